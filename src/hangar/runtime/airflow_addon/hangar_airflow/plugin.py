"""Airflow plugin: Hangar's browser login and MWAA-compatible routes, on the web server.

Hangar drops ``hangar_login.py`` (``from hangar_airflow.plugin import HangarPlugin``)
into the plugins folder; Airflow (2 and 3) registers every AirflowPlugin subclass
found in a plugin module's namespace, imported ones included.

Routes:
- ``GET /hangar/login?token=<api token>&next=/path``: browser login with an API token.
- ``GET /aws_mwaa/aws-console-sso?login=true#<web token>``, ``POST
  /aws_mwaa/aws-console-sso/login`` and ``POST /aws_mwaa/cli``: MWAA's web-login and CLI
  endpoints (see ``hangar_airflow.mwaa``).

- Airflow 3 (api-server): FastAPI sub-apps at /hangar and /aws_mwaa (``fastapi_apps``).
  For /hangar/login the token is checked by the configured auth manager itself
  (``get_user_from_token``), then stored as the ``_token`` cookie the Airflow UI/API
  already authenticate with.
- Airflow 2 (webserver): Flask blueprints at /hangar and /aws_mwaa (``flask_blueprints``).
  For /hangar/login the token is checked with ``tokens.decode`` (purpose ``api``) and its
  ``sub`` FAB user is logged into the Flask session (its FAB roles apply; the token's
  ``role`` is ignored).

Invariants: only the attribute for the running major version is defined, so the
module imports on both; a bad/expired/missing token is a 401 with a fixed plain-text
body and we set no cookie/session; ``next`` is only ever a same-origin path (else the
default). On Airflow 3 a browser still holding an old ``_token`` gets one extra redirect
back to the login route (old cookie deleted) before the new cookie is set; see
``login.fastapi_cookie_login``.
"""

from __future__ import annotations

import airflow
from airflow.plugins_manager import AirflowPlugin

from hangar_airflow import mwaa
from hangar_airflow.login import NO_LEAK_HEADERS, RETRY_PARAM, safe_next

AIRFLOW_MAJOR = int(airflow.__version__.split(".", 1)[0])
LOGIN_FAILED = "invalid or expired Hangar login token"

__all__ = ["HangarPlugin", "safe_next", "AIRFLOW_MAJOR", "LOGIN_FAILED"]


def _build_fastapi_app():
    from urllib.parse import urlencode

    import jwt
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    from airflow.api_fastapi.app import get_auth_manager

    from hangar_airflow.login import fastapi_cookie_login

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
            return PlainTextResponse(LOGIN_FAILED, status_code=401, headers=NO_LEAK_HEADERS)
        # Relative URL: this same route, same query, plus the retry marker.
        retry = "login?" + urlencode([*request.query_params.multi_items(), (RETRY_PARAM, "1")])
        return fastapi_cookie_login(
            request, token, next_url=safe_next(request.query_params.get("next"), "/"), retry_url=retry
        )

    app.add_route("/login", login, methods=["GET"])
    return app


def _build_flask_blueprint():
    from flask import Blueprint, Response, request

    from hangar_airflow.auth_backend import user_from_token
    from hangar_airflow.login import flask_login

    bp = Blueprint("hangar", __name__, url_prefix="/hangar")

    # GET only, so Airflow's global CSRFProtect does not apply.
    @bp.route("/login", methods=["GET"])
    def login():
        token = request.args.get("token", "")
        user = user_from_token(token) if token else None
        response = flask_login(user, safe_next(request.args.get("next"), "/home"))
        if response is None:
            return Response(LOGIN_FAILED, 401, {"Content-Type": "text/plain; charset=utf-8", **NO_LEAK_HEADERS})
        return response

    return bp


class LazyASGIApp:
    """An ASGI app built on its first request.

    Airflow imports plugins in every process, including each task's, but only the
    api-server serves these routes: building the FastAPI apps (and importing
    Airflow's API server to do it) at import time cost every task seconds."""

    def __init__(self, factory) -> None:
        self._factory = factory
        self._app = None

    async def __call__(self, scope, receive, send) -> None:
        if self._app is None:
            self._app = self._factory()
        await self._app(scope, receive, send)


class HangarPlugin(AirflowPlugin):
    """Registers Hangar's browser login and MWAA routes for the running Airflow major version."""

    name = "hangar"
    if AIRFLOW_MAJOR >= 3:
        fastapi_apps = [
            {"app": LazyASGIApp(_build_fastapi_app), "url_prefix": "/hangar", "name": "hangar"},
            {"app": LazyASGIApp(mwaa.build_fastapi_app), "url_prefix": mwaa.URL_PREFIX, "name": "hangar-mwaa"},
        ]
    else:
        flask_blueprints = [_build_flask_blueprint(), mwaa.build_flask_blueprint()]
