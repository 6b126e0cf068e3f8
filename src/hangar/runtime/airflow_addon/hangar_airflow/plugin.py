"""Airflow plugin adding ``GET /hangar/login?token=<jwt>&next=/path`` (browser login).

Hangar drops ``hangar_login.py`` (``from hangar_airflow.plugin import HangarPlugin``)
into the plugins folder; Airflow (2 and 3) registers every AirflowPlugin subclass
found in a plugin module's namespace, imported ones included.

- Airflow 3 (api-server): a FastAPI sub-app at /hangar (``fastapi_apps``). The token
  is checked by the configured auth manager itself (``get_user_from_token``), then
  stored as the ``_token`` cookie the Airflow UI/API already authenticate with.
- Airflow 2 (webserver): a Flask blueprint at /hangar (``flask_blueprints``). The
  token is checked with ``tokens.decode`` and its ``sub`` FAB user is logged into
  the Flask session (its FAB roles apply; the token's ``role`` is ignored).

Invariants: only the attribute for the running major version is defined, so the
module imports on both; a bad/expired/missing token is a 401 with a fixed plain-text
body and we set no cookie/session; ``next`` is only ever a same-origin path (else the
default). On Airflow 3 a browser still holding an old ``_token`` gets one extra 303
back to this route (old cookie deleted) before the new cookie is set; see below.
"""

from __future__ import annotations

import airflow
from airflow.plugins_manager import AirflowPlugin

AIRFLOW_MAJOR = int(airflow.__version__.split(".", 1)[0])
LOGIN_FAILED = "invalid or expired Hangar login token"
# The token travels in the URL: keep it out of caches and Referer headers.
_NO_LEAK_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


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


def _build_fastapi_app():
    from urllib.parse import urlencode

    import jwt
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse, RedirectResponse

    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.configuration import conf

    try:
        from airflow.api_fastapi.app import get_cookie_path
    except ImportError:  # older 3.x

        def get_cookie_path() -> str:
            return "/"

    app = FastAPI(title="Hangar login", docs_url=None, redoc_url=None, openapi_url=None)

    # Plain Starlette route (endpoint gets the Request positionally): FastAPI's
    # annotation-based injection can't resolve names under `from __future__ import annotations`.
    async def login(request):
        token = request.query_params.get("token", "")
        try:
            if not token:
                raise jwt.InvalidTokenError("missing token")
            await get_auth_manager().get_user_from_token(token)
        except jwt.PyJWTError:
            return PlainTextResponse(LOGIN_FAILED, status_code=401, headers=_NO_LEAK_HEADERS)
        # Same cookie attributes as Airflow's own login routes.
        cookie = {
            "path": get_cookie_path(),
            "secure": request.base_url.scheme == "https" or bool(conf.get("api", "ssl_cert", fallback="")),
            "httponly": True,
            "samesite": "lax",
        }
        stale = request.cookies.get(COOKIE_NAME_JWT_TOKEN)
        if stale and stale != token and "hangar_retry" not in request.query_params:
            # Airflow's JWTRefreshMiddleware wraps this app and, when the browser still sends an
            # expired/invalid _token, appends a deleting Set-Cookie *after* ours, undoing the
            # login. So drop the old cookie first and come back once (relative URL, same query).
            retry = "login?" + urlencode([*request.query_params.multi_items(), ("hangar_retry", "1")])
            response = RedirectResponse(retry, status_code=303, headers=_NO_LEAK_HEADERS)
            response.delete_cookie(COOKIE_NAME_JWT_TOKEN, **cookie)
            return response
        response = RedirectResponse(
            safe_next(request.query_params.get("next"), "/"), status_code=303, headers=_NO_LEAK_HEADERS
        )
        response.set_cookie(COOKIE_NAME_JWT_TOKEN, token, **cookie)
        return response

    app.add_route("/login", login, methods=["GET"])
    return app


def _build_flask_blueprint():
    from flask import Blueprint, Response, redirect, request
    from flask_login import login_user

    from hangar_airflow.auth_backend import user_from_token

    bp = Blueprint("hangar", __name__, url_prefix="/hangar")

    # GET only, so Airflow's global CSRFProtect does not apply.
    @bp.route("/login", methods=["GET"])
    def login():
        token = request.args.get("token", "")
        user = user_from_token(token) if token else None
        if user is None or not login_user(user, remember=False):
            return Response(LOGIN_FAILED, 401, {"Content-Type": "text/plain; charset=utf-8", **_NO_LEAK_HEADERS})
        response = redirect(safe_next(request.args.get("next"), "/home"), code=303)
        response.headers.update(_NO_LEAK_HEADERS)
        return response

    return bp


class HangarPlugin(AirflowPlugin):
    """Registers Hangar's browser login route for the running Airflow major version."""

    name = "hangar"
    if AIRFLOW_MAJOR >= 3:
        fastapi_apps = [{"app": _build_fastapi_app(), "url_prefix": "/hangar", "name": "hangar"}]
    else:
        flask_blueprints = [_build_flask_blueprint()]
