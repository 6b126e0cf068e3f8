"""Credentials for git DAG sources: an HTTPS token, or an SSH deploy key with the host key it
must find (a known_hosts text). The secret goes in once and is never shown again."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
MAX_SECRET = 16 * 1024


class GitCredentialCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="letters, digits, '.', '_' and '-'; starts with a letter")
    token: SecretStr | None = Field(default=None, description="an HTTPS token (GitHub, GitLab, Azure DevOps, Bitbucket)")
    ssh_key: SecretStr | None = Field(default=None, description="an SSH private key (OpenSSH or PEM)")
    known_hosts: str | None = Field(default=None, max_length=MAX_SECRET,
                                    description="known_hosts lines pinning the SSH server's host key")

    @model_validator(mode="after")
    def _one_kind(self) -> "GitCredentialCreate":
        if (self.token is None) == (self.ssh_key is None):
            raise ValueError("give either token (HTTPS) or ssh_key with known_hosts (SSH), not both or neither")
        if self.token is not None:
            value = self.token.get_secret_value().strip()
            if not value or any(c.isspace() for c in value) or len(value) > MAX_SECRET:
                raise ValueError("token must be one line of at most 16 KiB without spaces")
            if self.known_hosts:
                raise ValueError("known_hosts goes with an SSH key, not a token")
        else:
            key = self.ssh_key.get_secret_value() if self.ssh_key else ""
            if "PRIVATE KEY-----" not in key or len(key) > MAX_SECRET:
                raise ValueError("ssh_key must be a private key in OpenSSH or PEM form "
                                 "('-----BEGIN ... PRIVATE KEY-----')")
            hosts = [line for line in (self.known_hosts or "").splitlines() if line.strip() and not line.startswith("#")]
            if not hosts or any(len(line.split()) < 3 for line in hosts):
                raise ValueError("an SSH key needs known_hosts: lines of 'host key-type key' pinning the server's "
                                 "host key (ssh-keyscan -p PORT HOST prints them; check them out of band)")
        return self


class GitCredentialPublic(BaseModel):
    name: str
    kind: str  # token or ssh
    created_at: datetime
    hosts: list[str] = Field(default_factory=list, description="the SSH hosts whose keys are pinned")
