"""Pages from templates: the one place the console builds HTML.

Every page gets the signed-in principal, its CSRF token and what its role may do, so templates
show only the controls the role has; the server refuses the rest anyway (each route requires its
action exactly as the API does). Times are written as UTC `<time>` elements that console.js shows
in the viewer's local time, with UTC on hover.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from starlette.responses import HTMLResponse

from hangar.domain import console_sessions
from hangar.domain.access import NEEDS, Principal

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))

BADGES = {
    "AVAILABLE": "ok", "CREATING": "busy", "UPDATING": "busy", "ROLLING_BACK": "busy", "DELETING": "busy",
    "PENDING": "busy", "CREATING_SNAPSHOT": "busy", "MAINTENANCE": "busy", "CREATE_FAILED": "bad",
    "UPDATE_FAILED": "bad", "UNAVAILABLE": "bad", "DELETED": "off",
}


# pages are never cached, never framed (clickjacking), and run only the console's own scripts
HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
}


def when(value: datetime | str | None) -> Markup:
    """A time as UTC text in a <time> element; console.js rewrites it in local time."""
    if value is None or value == "":
        return Markup('<span class="muted">never</span>')
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    utc = value.astimezone(timezone.utc)
    iso = utc.isoformat(timespec="seconds").replace("+00:00", "Z")
    text = utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup(f'<time datetime="{iso}" title="{text}">{text}</time>')


def badge(status: str | None) -> Markup:
    status = status or "UNKNOWN"
    return Markup(f'<span class="badge {BADGES.get(status, "off")}">{escape(status)}</span>')


templates.env.filters["when"] = when
templates.env.filters["badge"] = badge


def may(principal: Principal | None, action: str) -> bool:
    return principal is not None and principal.role >= NEEDS[action]


class Allowed(SimpleNamespace):
    """What the principal's role may do, as `may.update` or `may["update"]` (a dict would answer
    `may.update` with its own update method, which is always true)."""

    def __getitem__(self, action: str) -> bool:
        return getattr(self, action)


def page(request: Request, template: str, /, status_code: int = 200, **context) -> HTMLResponse:
    state = request.state
    principal: Principal | None = getattr(state, "principal", None)
    token = getattr(state, "console_token", None)
    context.setdefault("title", "Hangar")
    return templates.TemplateResponse(request, template, {
        "principal": principal,
        "csrf": console_sessions.csrf_token(token) if token else "",
        "may": Allowed(**{action: may(principal, action) for action in NEEDS}),
        **context,
    }, status_code=status_code, headers=HEADERS)


def error_page(request: Request, *, status_code: int, message: str, title: str | None = None) -> HTMLResponse:
    """What a console request that went wrong shows: the cause, in words (fragments get a short
    message the page puts in place)."""
    titles = {400: "That did not work", 403: "Not allowed", 404: "Not found", 409: "Not now"}
    heading = title or titles.get(status_code, "Something went wrong")
    if request.headers.get("hx-request"):
        return HTMLResponse(f'<div class="alert error" role="alert"><strong>{escape(heading)}:</strong> '
                            f'{escape(message)}</div>', status_code=status_code)
    return page(request, "error.html", status_code=status_code, title=heading, heading=heading, message=message)
