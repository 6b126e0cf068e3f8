"""MWAA's two ways into an environment, served by the environment's own web server.

- Web login, exactly MWAA's URL shape: ``GET /aws_mwaa/aws-console-sso?login=true#<WebToken>``.
  The token is in the URL *fragment*, which browsers never send to a server, so this
  route returns a tiny self-contained HTML page (inline script only, locked down by a
  hash-based Content-Security-Policy) whose script reads ``location.hash``, removes it
  from the address bar/history (``history.replaceState``) and form-POSTs it to
  ``/aws_mwaa/aws-console-sso/login`` (a POST body: the token never reaches access logs,
  history or Referer headers). That route verifies a ``web``-purpose token and logs the
  browser in with the same code as ``/hangar/login`` (``hangar_airflow.login``), then
  redirects (303) to the UI home. Bad/expired/wrong-purpose token: 401 HTML page naming
  the reason, no cookie/session set.
  * Airflow 3: the 60 s web token is *not* used as the session. A session token for the
    same ``sub``/``role`` is issued by Airflow's own ``get_auth_manager().generate_jwt``
    (``deserialize_user`` + the configured ``[api_auth] jwt_expiration_time``, audience,
    issuer and signing key), i.e. exactly what Airflow's own login would set as
    ``_token``; Airflow's middleware then refreshes it like any session.
  * Airflow 2: the FAB user named by ``sub`` is logged into the Flask session (its FAB
    roles apply, as for ``/hangar/login``); session lifetime is Airflow's own
    (``[webserver] session_lifetime_minutes``).
- CLI: ``POST /aws_mwaa/cli`` with ``Authorization: Bearer <CliToken>`` (purpose ``cli``)
  and the command as text body; see ``hangar_airflow.cli_commands`` for the allow-list,
  role mapping, limits and response shape. Missing/invalid/expired/wrong-purpose token:
  401 (``WWW-Authenticate: Bearer``); role too low: 403.

Airflow 2 wiring: both POST routes bypass Airflow's global CSRFProtect (the whole
/aws_mwaa blueprint is exempted when it is registered), since they are authenticated by
a Hangar token, not by the browser session.

Everything above the ``build_*`` functions is framework-free (unit-tested without
Airflow); the builders import FastAPI/Flask/Airflow lazily.
"""

from __future__ import annotations

import base64
import hashlib
import html
from typing import Any
from urllib.parse import parse_qs

from . import cli_commands, tokens
from .login import NO_LEAK_HEADERS

URL_PREFIX = "/aws_mwaa"
SSO_PATH = "/aws-console-sso"
SSO_LOGIN_PATH = "/aws-console-sso/login"
CLI_PATH = "/cli"
MAX_FORM_BYTES = 16 * 1024
# Concurrent CLI commands per environment (all web server workers together). Airflow 2's
# webserver runs 2 sync gunicorn workers: keep one free for the UI while a command runs.
CLI_SLOTS = {2: 1, 3: 2}

# The landing page's only script. Served verbatim; its hash is the page's script-src.
SSO_SCRIPT = """(function () {
  var token = location.hash.replace(/^#/, "");
  try { token = decodeURIComponent(token); } catch (e) {}
  try { history.replaceState(null, "", location.pathname + location.search); } catch (e) {}
  var status = document.getElementById("status");
  if (!token) {
    status.textContent = "No login token in this URL (the part after #). Ask Hangar for a new web login URL.";
    return;
  }
  var form = document.getElementById("sso");
  form.action = location.pathname.replace(/\\/+$/, "") + "/login";
  document.getElementById("token").value = token;
  form.submit();
})();"""

SSO_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Signing in to Airflow</title>
</head>
<body>
<p id="status">Signing in to Airflow&hellip;</p>
<noscript><p>JavaScript is needed to complete the sign-in.</p></noscript>
<form id="sso" method="post"><input type="hidden" name="token" id="token"></form>
<script>{SSO_SCRIPT}</script>
</body>
</html>
"""

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(SSO_SCRIPT.encode()).digest()).decode()
SSO_PAGE_HEADERS = {
    **NO_LEAK_HEADERS,
    "Content-Security-Policy": (
        f"default-src 'none'; script-src 'sha256-{_SCRIPT_HASH}'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}
FAILURE_HEADERS = {
    **NO_LEAK_HEADERS,
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


def failure_page(reason: str) -> str:
    """The 401 page of a refused web login (``reason`` is escaped)."""
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Airflow sign-in failed</title></head>
<body>
<h1>Sign-in failed</h1>
<p>The web login token is invalid, expired or not a web login token: {html.escape(reason)}.</p>
<p>Web login URLs are valid for a short time only; ask Hangar for a new one.</p>
</body>
</html>
"""


def token_from_form(body: bytes) -> str:
    """The ``token`` field of an urlencoded form body ("" if absent or malformed)."""
    if len(body) > MAX_FORM_BYTES:
        return ""
    try:
        values = parse_qs(body.decode("ascii"), max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        return ""
    return (values.get("token") or [""])[0].strip()


def web_claims(token: str, secret: str) -> dict[str, Any]:
    """Claims of a valid ``web``-purpose token with a known role, else ``TokenError``."""
    claims = tokens.decode(token, secret, purpose=tokens.PURPOSE_WEB)
    if claims.get("role") not in tokens.ROLES:
        raise tokens.TokenError("unknown role")
    return claims


def bearer_token(authorization: str | None) -> str:
    scheme, _, credentials = (authorization or "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def handle_cli(
    authorization: str | None,
    body: bytes | None,
    *,
    secret: str,
    airflow_major: int,
    **execute_kwargs: Any,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """One ``POST /aws_mwaa/cli``: (HTTP status, JSON body, extra headers). Blocking.

    The token is checked before the body is even parsed, so unauthenticated callers learn
    nothing about the allow-list. ``body=None`` means it exceeded the size limit.
    """
    headers = {"Cache-Control": "no-store"}
    token = bearer_token(authorization)
    if not token:
        return 401, {"error": "missing Bearer CLI token"}, {**headers, "WWW-Authenticate": "Bearer"}
    try:
        claims = tokens.decode(token, secret, purpose=tokens.PURPOSE_CLI)
    except tokens.TokenError as exc:
        return 401, {"error": f"invalid CLI token: {exc}"}, {**headers, "WWW-Authenticate": "Bearer"}
    role = claims.get("role")
    if role not in tokens.ROLES:
        return 403, {"error": f"unknown role {role!r}"}, headers
    if body is None:
        return 413, {"error": f"command longer than {cli_commands.MAX_COMMAND_BYTES} bytes"}, headers
    execute_kwargs.setdefault("slots", CLI_SLOTS.get(airflow_major, 1))
    status, payload = cli_commands.execute(body, role=role, airflow_major=airflow_major, **execute_kwargs)
    if status == 429:
        headers["Retry-After"] = "5"
    return status, payload, headers


def build_fastapi_app():
    """Airflow 3: the FastAPI app mounted at /aws_mwaa."""
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.concurrency import run_in_threadpool

    from airflow.api_fastapi.app import get_auth_manager

    from .login import RETRY_PARAM, fastapi_cookie_login

    app = FastAPI(title="Hangar MWAA compatibility", docs_url=None, redoc_url=None, openapi_url=None)

    async def read_limited(request, limit: int) -> bytes | None:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    # Plain Starlette routes (endpoint gets the Request positionally), as in plugin.py.
    async def sso_page(request):
        return HTMLResponse(SSO_PAGE, headers=SSO_PAGE_HEADERS)

    async def sso_login(request):
        body = await read_limited(request, MAX_FORM_BYTES)
        try:
            claims = web_claims(token_from_form(body or b""), tokens.secret_from_airflow_config())
        except tokens.TokenError as exc:
            return HTMLResponse(failure_page(str(exc)), status_code=401, headers=FAILURE_HEADERS)
        auth_manager = get_auth_manager()
        user = auth_manager.deserialize_user({"sub": claims["sub"], "role": claims["role"]})
        session_token = auth_manager.generate_jwt(user)
        # On a retry the browser re-POSTs the same form (307), minus the stale cookie.
        return fastapi_cookie_login(
            request, session_token, next_url="/", retry_url=f"login?{RETRY_PARAM}=1", retry_status=307
        )

    async def cli(request):
        body = await read_limited(request, cli_commands.MAX_COMMAND_BYTES)
        status, payload, headers = await run_in_threadpool(
            handle_cli,
            request.headers.get("Authorization"),
            body,
            secret=tokens.secret_from_airflow_config(),
            airflow_major=3,
        )
        return JSONResponse(payload, status_code=status, headers=headers)

    app.add_route(SSO_PATH, sso_page, methods=["GET"])
    app.add_route(SSO_LOGIN_PATH, sso_login, methods=["POST"])
    app.add_route(CLI_PATH, cli, methods=["POST"])
    return app


def build_flask_blueprint():
    """Airflow 2: the Flask blueprint at /aws_mwaa (CSRF-exempt once registered)."""
    from flask import Blueprint, Response, jsonify, request

    from .auth_backend import active_user
    from .login import flask_login

    bp = Blueprint("hangar_mwaa", __name__, url_prefix=URL_PREFIX)

    def exempt_from_csrf(_state) -> None:
        # Imported only when the webserver registers the blueprint (never in the
        # scheduler etc., which also load plugins): airflow.www.app is then loaded.
        from airflow.www.app import csrf

        csrf.exempt(bp)

    bp.record_once(exempt_from_csrf)

    def read_limited(limit: int) -> bytes | None:
        if request.content_length is not None and request.content_length > limit:
            return None
        data = request.stream.read(limit + 1)
        return None if len(data) > limit else data

    @bp.route(SSO_PATH, methods=["GET"])
    def sso_page():
        return Response(SSO_PAGE, 200, {"Content-Type": "text/html; charset=utf-8", **SSO_PAGE_HEADERS})

    @bp.route(SSO_LOGIN_PATH, methods=["POST"])
    def sso_login():
        def refuse(reason: str):
            return Response(
                failure_page(reason), 401, {"Content-Type": "text/html; charset=utf-8", **FAILURE_HEADERS}
            )

        try:
            claims = web_claims(token_from_form(read_limited(MAX_FORM_BYTES) or b""), tokens.secret_from_airflow_config())
        except tokens.TokenError as exc:
            return refuse(str(exc))
        response = flask_login(active_user(claims["sub"]), "/home")
        return response if response is not None else refuse(f"no active Airflow user {claims['sub']!r}")

    @bp.route(CLI_PATH, methods=["POST"])
    def cli():
        status, payload, headers = handle_cli(
            request.headers.get("Authorization"),
            read_limited(cli_commands.MAX_COMMAND_BYTES),
            secret=tokens.secret_from_airflow_config(),
            airflow_major=2,
        )
        response = jsonify(payload)
        response.status_code = status
        response.headers.update(headers)
        return response

    return bp
