"""Running git for a DAG sync: a clean environment, credentials off the command line, and
failures classified into named errors.

Invariants:
- git never reads a user's or the system's configuration (GIT_CONFIG_GLOBAL=/dev/null,
  GIT_CONFIG_NOSYSTEM=1, HOME is a private empty folder) and never prompts (GIT_TERMINAL_PROMPT=0,
  ssh BatchMode=yes); it speaks only the transports listed in GIT_ALLOW_PROTOCOL.
- A secret never appears on any process's command line. An HTTPS token reaches git through
  GIT_ASKPASS: a 0700 script in a 0700 folder that prints an environment variable. An SSH key
  is a 0600 file in that folder, named by GIT_SSH_COMMAND. The folder is removed when the
  `Git` context ends.
- Every message raised from here is scrubbed of the token (raw, URL-encoded, and as the
  base64 of an HTTP Basic header) and of any password written into the URL.
"""
from __future__ import annotations

import base64
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from hangar.errors import (
    GitAuthFailed,
    GitHostKeyMismatch,
    GitRefNotFound,
    GitRepositoryNotFound,
    GitSyncFailed,
    GitTimedOut,
    GitUnreachable,
)

ALLOWED_PROTOCOLS = "https:http:ssh:git:file"
_ASKPASS = """#!/bin/sh
case "$1" in
  Username*) printf '%s\\n' "$HANGAR_GIT_USERNAME" ;;
  *) printf '%s\\n' "$HANGAR_GIT_TOKEN" ;;
esac
"""
_URL_PASSWORD = re.compile(r"(://[^/@:\s]*:)[^/@\s]*@")


@dataclass(frozen=True, kw_only=True)
class HttpsToken:
    """A token sent as the password of HTTP Basic (how GitHub, GitLab, Gitea and Bitbucket take one)."""

    token: str = field(repr=False)
    username: str = "x-access-token"


@dataclass(frozen=True, kw_only=True)
class SshKey:
    """An SSH private key (OpenSSH or PEM text, no passphrase) and the known_hosts lines that pin
    the host's key; a host whose key is not listed is refused."""

    private_key: str = field(repr=False)
    known_hosts: str


Credential = HttpsToken | SshKey


@dataclass(frozen=True, kw_only=True)
class GitSource:
    """Where an environment's DAGs come from. `ref` is a branch, a tag or a full commit sha;
    `subdir` a folder of the repository to serve instead of its root."""

    url: str
    ref: str = "main"
    subdir: str = ""
    credential: Credential | None = None


class Git:
    """A context in which git runs with `credential`; `run` raises a named error on failure."""

    def __init__(self, *, credential: Credential | None, timeout: float, url: str = "") -> None:
        self.credential, self.timeout, self.url = credential, timeout, url
        self._private: Path | None = None
        self._env: dict[str, str] = {}
        self._secrets: list[str] = []

    def __enter__(self) -> Git:
        self._private = Path(tempfile.mkdtemp(prefix="hangar-git-"))  # mode 0700
        home = self._private / "home"
        home.mkdir(mode=0o700)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "LC_ALL": "C",
            "LANG": "C",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS,
            "GIT_SSH_COMMAND": "ssh -F /dev/null -o BatchMode=yes",
        }
        credential = self.credential
        if isinstance(credential, HttpsToken):
            askpass = self._private / "askpass"
            _write_private(askpass, _ASKPASS, mode=0o700)
            env |= {"GIT_ASKPASS": str(askpass), "HANGAR_GIT_TOKEN": credential.token,
                    "HANGAR_GIT_USERNAME": credential.username}
            basic = base64.b64encode(f"{credential.username}:{credential.token}".encode()).decode()
            self._secrets = [credential.token, quote(credential.token, safe=""), basic]
        elif isinstance(credential, SshKey):
            key, known = self._private / "id", self._private / "known_hosts"
            _write_private(key, credential.private_key.rstrip("\n") + "\n", mode=0o600)
            _write_private(known, credential.known_hosts.rstrip("\n") + "\n", mode=0o600)
            env["GIT_SSH_COMMAND"] = shlex.join([
                "ssh", "-F", "/dev/null", "-i", str(key), "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={known}", "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
            self._secrets = [line for line in credential.private_key.splitlines() if len(line.strip()) >= 16]
        self._env = env
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None

    def scrub(self, text: str) -> str:
        """`text` without any secret of this context or password written into a URL."""
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return _URL_PASSWORD.sub(r"\1***@", text)

    def _exec(self, args: tuple[str, ...], *, git_dir: Path | None, env: dict[str, str] | None,
              deadline: float | None, input: str | None) -> subprocess.CompletedProcess:
        """git with this context's environment, given up on (GitTimedOut) at the deadline."""
        command = ["git"] + (["--git-dir", str(git_dir)] if git_dir is not None else []) + list(args)
        left = self.timeout if deadline is None else max(0.1, deadline - time.monotonic())
        try:
            return subprocess.run(command, env=self._env | (env or {}), capture_output=True, text=True,
                                  timeout=left, **({"input": input} if input is not None
                                                   else {"stdin": subprocess.DEVNULL}))
        except subprocess.TimeoutExpired:
            raise GitTimedOut(f"git {args[0]} of {self.scrub(self.url)} did not finish within "
                              f"{self.timeout:g} s") from None

    def run(self, *args: str, git_dir: Path | None = None, env: dict[str, str] | None = None,
            deadline: float | None = None, ref: str = "", input: str | None = None) -> str:
        """git's stdout; raises a GitSyncFailed subclass named for the cause when git fails."""
        done = self._exec(args, git_dir=git_dir, env=env, deadline=deadline, input=input)
        if done.returncode != 0:
            raise classify(stderr=self.scrub(done.stderr), url=self.scrub(self.url), ref=ref, action=args[0])
        return done.stdout

    def succeeds(self, *args: str, git_dir: Path, deadline: float | None = None) -> bool:
        """Whether a local git query answers yes (exit 0) rather than no (exit 1)."""
        done = self._exec(args, git_dir=git_dir, env=None, deadline=deadline, input=None)
        if done.returncode > 1:
            raise GitSyncFailed(f"git {args[0]} failed: {_tail(self.scrub(done.stderr))}")
        return done.returncode == 0


# Phrases of git, curl and OpenSSH (LC_ALL=C), most specific first.
_RULES: list[tuple[type[GitSyncFailed], tuple[str, ...], str]] = [
    (GitHostKeyMismatch, ("REMOTE HOST IDENTIFICATION HAS CHANGED", "Host key verification failed",
                          "host key is known for", "No ED25519 host key", "No RSA host key", "No ECDSA host key"),
     "the SSH host key of {host} does not match the key pinned in the credential's known_hosts"),
    (GitAuthFailed, ("Authentication failed", "could not read Username", "could not read Password",
                     "Permission denied", "returned error: 401", "returned error: 403",
                     "Invalid username or password", "terminal prompts disabled"),
     "{host} refused the credential (a wrong or expired token, or a key it does not accept), "
     "or asked for one and none was given"),
    (GitUnreachable, ("Could not resolve host", "Could not resolve hostname", "Failed to connect",
                      "Couldn't connect to server", "Connection refused", "Connection timed out",
                      "Operation timed out", "No route to host", "Network is unreachable",
                      "Connection reset", "SSL certificate problem", "server certificate verification failed",
                      "Empty reply from server", "Connection closed by"),
     "{host} cannot be reached ({detail})"),
    (GitRefNotFound, ("couldn't find remote ref", "not our ref", "unadvertised object", "no such remote ref",
                      "unknown revision", "bad object"),
     "{ref!r} is not a branch, tag or commit of {url}"),
    (GitRepositoryNotFound, ("not found", "does not appear to be a git repository", "returned error: 404",
                             "does not exist", "No such file or directory"),
     "{url} is not a git repository, or the credential cannot see it"),
]
# the most telling words first: curl says "Failed to connect ...: Connection refused"
_DETAILS = ("Could not resolve hostname", "Could not resolve host", "Connection refused", "Connection timed out",
            "Operation timed out", "No route to host", "Network is unreachable", "Connection reset",
            "SSL certificate problem", "server certificate verification failed", "Empty reply from server",
            "Connection closed by", "Couldn't connect to server", "Failed to connect")


def classify(*, stderr: str, url: str, ref: str, action: str) -> GitSyncFailed:
    """The named error for a failed git command, from its (already scrubbed) stderr."""
    host = host_of(url)
    for kind, phrases, message in _RULES:
        if any(phrase.lower() in stderr.lower() for phrase in phrases):
            detail = next((words.lower() for words in _DETAILS if words.lower() in stderr.lower()), "no answer")
            return kind(message.format(host=host, url=url, ref=ref, detail=detail))
    return GitSyncFailed(f"git {action} of {url} failed: {_tail(stderr)}")


def host_of(url: str) -> str:
    """The host a git URL points at: https://host/..., ssh://user@host:port/..., user@host:path."""
    if "://" in url:
        rest = url.split("://", 1)[1]
        if url.startswith("file://"):
            return "the local repository"
        return rest.split("/", 1)[0].rsplit("@", 1)[-1] or url
    if ":" in url and not url.startswith("/"):
        return url.split(":", 1)[0].rsplit("@", 1)[-1]
    return "the local repository"


def _tail(stderr: str, lines: int = 3) -> str:
    kept = [line.strip() for line in stderr.strip().splitlines() if line.strip()][-lines:]
    return "; ".join(kept) or "no message"


def _write_private(path: Path, text: str, *, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as file:
        file.write(text)
