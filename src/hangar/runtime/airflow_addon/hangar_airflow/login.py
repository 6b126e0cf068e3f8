"""Browser login shared by ``/hangar/login`` and the MWAA SSO route (both Airflow majors).

Framework imports are local to each function, so this module imports on Airflow 2
(no FastAPI app) and 3 (no Flask app) alike.

- Airflow 3: ``fastapi_cookie_login`` stores a token the auth manager accepts as the
  ``_token`` cookie Airflow's UI/API authenticate with, then redirects.
- Airflow 2: ``flask_login`` logs a FAB user into the Flask session, then redirects.

Invariants: ``next_url`` must already be a same-origin path (see ``safe_next``); every
response carries ``NO_LEAK_HEADERS`` (tokens travel in URLs/forms: no caching, no Referer).
"""

from __future__ import annotations

NO_LEAK_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
RETRY_PARAM = "hangar_retry"


def safe_next(value: str | None, default: str) -> str:
    """Allow only a local absolute path ("/x"), never "//host" or "/\\host"."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
    ):
        return default
    return value


def fastapi_cookie_login(request, token: str, *, next_url: str, retry_url: str, retry_status: int = 303):
    """Airflow 3: set ``_token`` to ``token`` and redirect (303) to ``next_url``.

    Airflow's JWTRefreshMiddleware wraps plugin apps and, when the browser still sends an
    expired/invalid ``_token``, appends a deleting Set-Cookie *after* ours, undoing the
    login. So if the browser sends any other ``_token``, first answer ``retry_status`` to
    ``retry_url`` (which must repeat this request and add ``hangar_retry=1``) while
    deleting the old cookie; the repeated request arrives without it. GET routes retry
    with 303; POST routes with 307, which makes the browser re-send the same form body.
    """
    from fastapi.responses import RedirectResponse

    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.configuration import conf

    try:
        from airflow.api_fastapi.app import get_cookie_path
    except ImportError:  # older 3.x

        def get_cookie_path() -> str:
            return "/"

    # Same cookie attributes as Airflow's own login routes.
    cookie = {
        "path": get_cookie_path(),
        "secure": request.base_url.scheme == "https" or bool(conf.get("api", "ssl_cert", fallback="")),
        "httponly": True,
        "samesite": "lax",
    }
    stale = request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    if stale and stale != token and RETRY_PARAM not in request.query_params:
        response = RedirectResponse(retry_url, status_code=retry_status, headers=NO_LEAK_HEADERS)
        response.delete_cookie(COOKIE_NAME_JWT_TOKEN, **cookie)
        return response
    response = RedirectResponse(next_url, status_code=303, headers=NO_LEAK_HEADERS)
    response.set_cookie(COOKIE_NAME_JWT_TOKEN, token, **cookie)
    return response


def flask_login(user, next_url: str):
    """Airflow 2: log FAB ``user`` into the Flask session and redirect (303); None if refused."""
    from flask import redirect
    from flask_login import login_user

    if user is None or not login_user(user, remember=False):
        return None
    response = redirect(next_url, code=303)
    response.headers.update(NO_LEAK_HEADERS)
    return response
