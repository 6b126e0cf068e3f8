"""HTTP client for the control plane, used by every CLI command.

Where to talk to: HANGAR_URL, else the URL the local server wrote into
HANGAR_HOME. The API key: HANGAR_API_KEY, else HANGAR_HOME/admin.key. A failed request raises
ClientError with the control plane's message, read by hangar.http_errors for every command.

Settings (pydantic) is imported only when a command builds its client: `--help` and usage
errors never pay for it. This module, like every client command's, imports no server code.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

import httpx
import typer

from hangar.http_errors import error_answer

if TYPE_CHECKING:
    from hangar.settings import Settings


class ClientError(Exception):
    """One line for stderr; the CLI exits non-zero with it."""


@dataclass
class Client:
    url: str
    key: str | None

    @classmethod
    def from_settings(cls, settings: Settings) -> "Client":
        url = os.environ.get("HANGAR_URL")
        if not url:
            url = settings.server_url_file.read_text().strip() if settings.server_url_file.exists() \
                else f"http://{settings.host}:{settings.port}"
        key = os.environ.get("HANGAR_API_KEY")
        if not key and settings.api_key_file.exists():
            key = settings.api_key_file.read_text().strip()
        return cls(url=url.rstrip("/"), key=key)

    @classmethod
    def from_environment(cls) -> "Client":
        """From HANGAR_* variables, the defaults where unset."""
        from hangar.settings import Settings

        return cls.from_settings(Settings())

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def send(self, method: str, path: str, *, timeout: float = 30, with_code: bool = False,
             **kwargs) -> httpx.Response:
        """The control plane's answer; a failure raises ClientError with its message (after its
        code, with `with_code`: a word scripts can match)."""
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        try:
            response = httpx.request(method, f"{self.url}{path}", headers=headers, timeout=timeout, **kwargs)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach the Hangar control plane at {self.url}: {exc}") from None
        answer = error_answer(response, method=method, path=path)
        if answer is not None:
            raise ClientError(answer.coded if with_code else answer.message)
        return response

    def request(self, method: str, path: str, **kwargs) -> dict | list:
        """send(), and the answer's JSON ({} for 204 No Content)."""
        response = self.send(method, path, **kwargs)
        return response.json() if response.status_code != 204 else {}


def fail(message: str) -> NoReturn:
    """One line on stderr, never wrapped, then exit 1."""
    first = next((line for line in message.splitlines() if line.strip()), "failed")
    print(f"error: {first}", file=sys.stderr)
    raise typer.Exit(1)


def call(method: str, path: str, **kwargs) -> dict | list:
    """A request from a CLI command to the control plane; a failure prints one line and exits 1."""
    try:
        return Client.from_environment().request(method, path, **kwargs)
    except ClientError as exc:
        fail(str(exc))
