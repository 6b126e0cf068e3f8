"""Sign-in and sign-out. The sign-in form has its own CSRF token, a nonce in a short-lived cookie
that the form must echo (there is no session yet to bind one to)."""
from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from hangar.api.console import gate
from hangar.api.console.pages.common import check_csrf
from hangar.api.console.render import page
from hangar.api.deps import ContextDep
from hangar.domain import console_sessions
from hangar.errors import Unauthorized

router = APIRouter(prefix="/console", include_in_schema=False)
NONCE_COOKIE = "hangar_sign_in"


def _safe_next(target: str | None) -> str:
    """Only a console path: never an absolute URL (an open redirect) or a protocol-relative one."""
    if not target or not target.startswith("/console") or target.startswith("//") or "\\" in target:
        return "/console"
    return target


def _form(request: Request, *, next_: str, status_code: int = 200, **context) -> Response:
    nonce = secrets.token_urlsafe(24)
    response = page(request, "sign_in.html", status_code=status_code, title="Sign in", nonce=nonce,
                    next=_safe_next(next_), access_key_id=context.pop("access_key_id", ""), **context)
    response.set_cookie(NONCE_COOKIE, nonce, max_age=3600, path="/console/sign-in", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.get("/sign-in", name="console.sign_in_form")
def sign_in_form(request: Request, next: str = "/console", expired: bool = False, signed_out: bool = False) -> Response:
    return _form(request, next_=next, expired=expired, signed_out=signed_out)


@router.post("/sign-in", name="console.sign_in")
def sign_in(request: Request, c: ContextDep, access_key_id: Annotated[str, Form(max_length=200)] = "",
            secret_access_key: Annotated[str, Form(max_length=400)] = "", csrf: Annotated[str, Form(max_length=200)] = "",
            next: Annotated[str, Form(max_length=2000)] = "/console") -> Response:
    nonce = request.cookies.get(NONCE_COOKIE, "")
    if not nonce or not hmac.compare_digest(nonce.encode(), csrf.encode()):
        return _form(request, next_=next, status_code=400, access_key_id=access_key_id,
                     error="This sign-in form had expired or did not come from this page; it is shown again. "
                           "Enter the key once more.")
    try:
        token, _ = console_sessions.sign_in(c, access_key_id=access_key_id, secret=secret_access_key,
                                            admin_key=request.app.state.admin_key)
    except Unauthorized as exc:
        return _form(request, next_=next, status_code=401, access_key_id=access_key_id, error=exc.message)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(gate.COOKIE, token, max_age=int(c.settings.console_session_hours * 3600), path="/console",
                        httponly=True, samesite="lax", secure=request.url.scheme == "https")
    response.delete_cookie(NONCE_COOKIE, path="/console/sign-in")
    return response


@router.post("/sign-out", name="console.sign_out")
async def sign_out(request: Request, c: ContextDep) -> Response:
    await check_csrf(request)
    token = getattr(request.state, "console_token", None)
    if token:
        console_sessions.sign_out(c, token=token)
    response = RedirectResponse("/console/sign-in?signed_out=1", status_code=303)
    response.delete_cookie(gate.COOKIE, path="/console")
    return response
