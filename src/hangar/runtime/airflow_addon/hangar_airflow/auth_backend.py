"""Airflow 2.x REST API auth backend accepting Hangar-minted Bearer JWTs.

Configure: ``[api] auth_backends = hangar_airflow.auth_backend,<session backend>``.
Airflow calls ``requires_authentication(Response)()`` for each backend in order and
accepts the first 200, so returning 401 here just lets the next backend try.

Invariants: a request is authenticated only if the Bearer token verifies against
``[api_auth] jwt_secret`` (HS512, aud ``apache-airflow``, purpose ``api``: web/CLI
tokens are refused, not expired) AND names an
existing, active FAB user; that user (with its FAB roles) is logged in via
flask_login for this request only (Airflow does not persist sessions for /api/v1).
"""

from __future__ import annotations

from functools import wraps
from typing import Any, Callable, TypeVar, cast

from flask import Response, current_app, request
from flask_login import login_user

from hangar_airflow import tokens

CLIENT_AUTH: tuple[str, str] | Any | None = None  # for airflow's (unused) API client

T = TypeVar("T", bound=Callable)


def init_app(_app) -> None:
    """Nothing to initialise; the secret is read per request from Airflow config."""


def active_user(username: str):
    """The active FAB user called ``username``, else None."""
    user = current_app.appbuilder.sm.find_user(username=username)
    if user is None or not getattr(user, "is_active", False):
        return None
    return user


def user_from_token(token: str, purpose: str = tokens.PURPOSE_API):
    """Return the active FAB user named by a valid ``purpose`` token's ``sub``, else None."""
    try:
        claims = tokens.decode(token, tokens.secret_from_airflow_config(), purpose=purpose)
    except tokens.TokenError:
        return None
    return active_user(claims["sub"])


def _bearer_token() -> str:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def requires_authentication(function: T) -> T:
    """Decorate functions that require authentication."""

    @wraps(function)
    def decorated(*args, **kwargs):
        token = _bearer_token()
        user = user_from_token(token) if token else None
        if user is not None and login_user(user, remember=False):
            return function(*args, **kwargs)
        return Response("Unauthorized", 401, {"WWW-Authenticate": "Bearer"})

    return cast(T, decorated)
