"""What every console page module shares: its router (prefix /console, CSRF-checked), the CSRF
check, and the caller types of hangar.api.deps."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from hangar.domain import console_sessions
from hangar.errors import AccessDenied

SAFE = {"GET", "HEAD", "OPTIONS"}
STOP_POLLING = 286  # htmx stops an `every` trigger on this status


class CsrfRefused(AccessDenied):
    code = "CSRF_REFUSED"

    def __init__(self) -> None:
        super().__init__("the form's security token is missing or does not belong to this session, so nothing "
                         "was changed; reload the page and try again")


async def check_csrf(request: Request) -> None:
    """Every state-changing console request carries the session's CSRF token, in the form field
    `csrf` or (htmx) the X-CSRF-Token header."""
    if request.method in SAFE:
        return
    token = getattr(request.state, "console_token", None)
    given = request.headers.get("x-csrf-token")
    if not given:
        form = await request.form()
        value = form.get("csrf")
        given = value if isinstance(value, str) else None
    if token is None or not console_sessions.csrf_matches(token, given):
        raise CsrfRefused()


def console_router() -> APIRouter:
    return APIRouter(prefix="/console", dependencies=[Depends(check_csrf)], include_in_schema=False)
