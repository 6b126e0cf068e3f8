"""Reading the control plane's answer to a failed request, for every client of its API: the
`hangar` command (hangar.cli.client) and a joined host (hangar.agent.client).

The native API answers a failure with {"error": {"code", "message"}} (hangar.api.errors). Any
other body (a proxy's page, an empty answer) has no code; its message names the request that
failed and its HTTP status. Imports no other Hangar module, so both clients can use it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import httpx


class ErrorAnswer(NamedTuple):
    code: str | None  # None: the body was not the API's
    message: str

    @property
    def coded(self) -> str:
        """The message after its code, when there is one: a word scripts can match."""
        return f"{self.code}: {self.message}" if self.code is not None else self.message


def error_answer(response: httpx.Response, *, method: str, path: str) -> ErrorAnswer | None:
    """None for a success (below HTTP 400); otherwise what the control plane said went wrong."""
    if response.status_code < 400:
        return None
    try:
        error = response.json()["error"]
        return ErrorAnswer(str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        return ErrorAnswer(None, f"{method} {path} failed with HTTP {response.status_code}")
