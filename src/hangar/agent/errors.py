"""Why a joined host stops, or waits: named after what went wrong, like hangar.errors.

ControlPlaneUnreachable is a wait (the worker keeps running, the request is tried again later);
JoinRefused is the control plane's own no; JoinFailed ends the join with exit 1.
"""
from __future__ import annotations

from hangar.errors import HangarError


class ControlPlaneUnreachable(HangarError):
    """No answer, or a 5xx: tried again later, the worker keeps running meanwhile."""

    code = "CONTROL_PLANE_UNREACHABLE"


class JoinRefused(HangarError):
    """The control plane said no (4xx): the message is its own."""

    def __init__(self, code: str, message: str, *, status: int) -> None:
        super().__init__(message)
        self.code, self.status = code, status

    @property
    def token_rejected(self) -> bool:
        """The token is revoked, or no longer valid for this environment: the host must stop."""
        return self.status in (401, 403)


class JoinFailed(HangarError):
    """This host cannot run the environment's workers: a bad token, an unbuildable runtime, a
    worker that keeps crashing. `hangar worker join` prints the message and exits 1."""

    code = "JOIN_FAILED"
