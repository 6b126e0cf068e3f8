"""Who a console request comes from, decided from its headers before its body is read.

The console's pages and forms authenticate by the session cookie (hangar.domain.console_sessions);
the sign-in page and the static assets are the only open paths. A request without a live session
is never handed to a route: a page asked for is redirected to sign-in, which returns to it after;
an htmx request gets `HX-Redirect`, so the whole page goes, not a fragment.
"""
from __future__ import annotations

from http.cookies import SimpleCookie
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response
from starlette.types import Scope

from hangar.domain import console_sessions

PREFIX = "/console"
COOKIE = "hangar_session"
OPEN = ("/console/static/", "/console/sign-in")


def covers(path: str) -> bool:
    """Whether `path` is the console's."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def session_cookie(headers: dict[str, str]) -> str | None:
    jar = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header is no session
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


def _return_to(scope: Scope, headers: dict[str, str]) -> str:
    """Where sign-in sends the person back to: the page asked for (for a form or a fragment, the
    page it was on)."""
    if headers.get("hx-request") or scope["method"] != "GET":
        came_from = urlsplit(headers.get("hx-current-url") or headers.get("referer") or "")
        path = came_from.path + (f"?{came_from.query}" if came_from.query else "")
    else:
        query = scope.get("query_string", b"").decode("latin-1")
        path = scope["path"] + (f"?{query}" if query else "")
    return path if path.startswith(PREFIX) and not path.startswith("/console/sign-in") else PREFIX


def to_sign_in(scope: Scope, headers: dict[str, str], *, expired: bool) -> Response:
    target = f"{PREFIX}/sign-in?next={quote(_return_to(scope, headers), safe='')}"
    if expired:
        target += "&expired=1"
    if headers.get("hx-request"):
        return Response(status_code=200, headers={"HX-Redirect": target})
    response = RedirectResponse(target, status_code=303)
    if expired:
        response.delete_cookie(COOKIE, path=PREFIX)
    return response


async def admit(scope: Scope, headers: dict[str, str]) -> Response | None:
    """None when the request may go on (its principal is then in scope["state"]), else the answer."""
    path = scope["path"]
    if path.startswith(OPEN):
        return None
    token = session_cookie(headers)
    ctx = scope["app"].state.ctx
    principal = await run_in_threadpool(console_sessions.resume, ctx, token=token) if token else None
    if principal is None:
        return to_sign_in(scope, headers, expired=token is not None)
    state = scope.setdefault("state", {})
    state["principal"] = principal
    state["console_token"] = token
    return None
