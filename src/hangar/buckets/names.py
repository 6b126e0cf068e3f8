"""Bucket names, object keys, ARNs and version ids: S3's rules, checked before anything is stored.

Keys become file paths when a folder of a bucket is mirrored to disk (hangar.buckets.mirror),
so a key that is not a plain relative path is refused here, not there.
"""
from __future__ import annotations

import ipaddress
import re
import secrets
import time
from typing import NewType

from hangar.buckets.errors import InvalidBucketName, InvalidObjectKey
from hangar.errors import ValidationFailed

VersionId = NewType("VersionId", str)

MAX_KEY_BYTES = 1024
_BUCKET_CHARS = re.compile(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")


def validate_bucket_name(name: str) -> str:
    """S3's bucket naming rules; the reason names the rule that was broken."""
    if not 3 <= len(name) <= 63:
        raise InvalidBucketName(name, "it must be 3 to 63 characters long")
    if not _BUCKET_CHARS.match(name):
        raise InvalidBucketName(
            name, "use only lowercase letters, digits, dots and hyphens, and start and end with a letter or digit")
    if ".." in name:
        raise InvalidBucketName(name, "it must not contain two dots in a row")
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        pass
    else:
        raise InvalidBucketName(name, "it must not look like an IP address")
    if name.startswith(("xn--", "sthree-")) or name.endswith(("-s3alias", "--ol-s3")):
        raise InvalidBucketName(name, "the prefixes xn-- and sthree- and the suffixes -s3alias and --ol-s3 are reserved")
    return name


def validate_key(key: str) -> str:
    """Keys map onto file paths when a prefix is materialized, so every segment must be a plain name.

    A trailing "/" is allowed (S3 consoles create such "folder" objects); they are
    never materialized.
    """
    if not key:
        raise InvalidObjectKey(key, "it is empty")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidObjectKey(key, f"it is longer than {MAX_KEY_BYTES} bytes")
    if key.startswith("/"):
        raise InvalidObjectKey(key, 'it must not start with "/"')
    if "\x00" in key:
        raise InvalidObjectKey(key, "it must not contain a NUL character")
    segments = key.split("/")
    if segments[-1] == "":
        segments.pop()
    for segment in segments:
        if segment == "..":
            raise InvalidObjectKey(key, 'it must not contain ".." as a path segment')
        if segment in ("", "."):
            raise InvalidObjectKey(key, 'it must not contain "//" or "." as a path segment')
    return key


def bucket_arn(name: str) -> str:
    return f"arn:aws:s3:::{name}"


def bucket_from_arn(arn: str) -> str:
    """The bucket name of an MWAA SourceBucketArn (`arn:aws:s3:::NAME`)."""
    prefix = "arn:aws:s3:::"
    if not arn.startswith(prefix) or "/" in arn[len(prefix):]:
        raise ValidationFailed(f"{arn!r} is not a bucket ARN; expected arn:aws:s3:::BUCKET")
    return validate_bucket_name(arn[len(prefix):])


def folder_prefix(prefix: str) -> str:
    """A DagS3Path-style prefix as a folder: "dags", "/dags/" and "dags/" all become "dags/"."""
    stripped = prefix.strip("/")
    if stripped:
        validate_key(stripped)
    return f"{stripped}/" if stripped else ""


def new_version_id() -> VersionId:
    """32 hex characters: milliseconds since the epoch, then 80 random bits. Sorts by time."""
    return VersionId(f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}")
