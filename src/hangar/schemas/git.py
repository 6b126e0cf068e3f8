"""The spec field that takes an environment's DAGs from a git repository.

Only what the user names lives here: the credential is the name of a stored secret, never
its value, and is decrypted by the layer that syncs (hangar.runtime.gitsync). URLs are
https, http or ssh (ssh://... or user@host:path): a file:// URL or a local path would let
an environment read the control plane's own files, and a password written into the URL
would be stored in the clear, so both are refused.
"""
from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!//)[^\s]+$")
_URL = re.compile(r"^(?:https?|ssh)://(?:[^/@:\s]+@)?[A-Za-z0-9.-]+(?::\d{1,5})?/[^\s]+$")
FULL_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
# git check-ref-format's rules, enough to keep a ref from being read as an option or a range
_BAD_REF = re.compile(r"(^[-/.])|(\.\.)|(//)|(@\{)|([\x00-\x20~^:?*\[\\\x7f])|([./]$)|(\.lock$)")
_CREDENTIAL = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,79}$")

MIN_SYNC_INTERVAL = 10
MAX_SYNC_INTERVAL = 86_400


class GitDags(BaseModel):
    """DAGs from `ref` of the repository at `url` (only `subdir` of it, if given), fetched every
    `sync_interval` seconds. `credential` names a stored secret: an HTTPS token, or an SSH key
    with the known_hosts lines that pin the host."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048)
    ref: str = Field(default="main", min_length=1, max_length=255)
    subdir: str = Field(default="", max_length=1024)
    sync_interval: int = Field(default=60, ge=MIN_SYNC_INTERVAL, le=MAX_SYNC_INTERVAL)
    credential: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        userinfo = url.split("://", 1)[1].split("/", 1)[0] if "://" in url else ""
        if ":" in userinfo.rpartition("@")[0]:
            raise ValueError("url must not hold a password: store it as a credential and name it")
        if not (_URL.match(url) or _SCP_LIKE.match(url)):
            raise ValueError("url must be an https://, http:// or ssh:// URL, or user@host:path")
        return url

    @field_validator("ref")
    @classmethod
    def _ref(cls, ref: str) -> str:
        if FULL_SHA.match(ref):
            return ref
        if _BAD_REF.search(ref):
            raise ValueError(f"ref {ref!r} is not a valid branch, tag or full commit sha")
        return ref

    @field_validator("subdir")
    @classmethod
    def _subdir(cls, subdir: str) -> str:
        cleaned = subdir.strip("/")
        if any(part in ("", ".", "..") for part in cleaned.split("/")) and cleaned:
            raise ValueError(f"subdir {subdir!r} must be a relative folder of the repository, without . or ..")
        if "\x00" in cleaned or "\\" in cleaned:
            raise ValueError(f"subdir {subdir!r} holds a character git paths cannot")
        return cleaned

    @field_validator("credential")
    @classmethod
    def _credential(cls, name: str | None) -> str | None:
        if name is not None and not _CREDENTIAL.match(name):
            raise ValueError("credential must be the name of a stored secret (letters, digits, _ . -)")
        return name
