"""InvokeRestApi: call an environment's Airflow REST API on the caller's behalf.

The call carries a token with the caller's role, so Airflow itself decides what
that role may do. Only paths of the documented form reach Airflow: a relative
REST path such as /dags or /dags/my_dag/dagRuns, under /api/v2 on Airflow 3 and
/api/v1 on Airflow 2.
"""
from __future__ import annotations

import re
from typing import Any

import httpx

from hangar.context import Context
from hangar.domain.access import Principal
from hangar.domain.environments import environment_token
from hangar.domain.queries import get_environment
from hangar.schemas.versions import parse_version
from hangar.errors import EnvironmentBusy, RestApiClientError, RestApiServerError, ValidationFailed

_PATH = re.compile(r"^/[A-Za-z0-9_\-.~:@/]*$")


def check_path(path: str) -> str:
    if not _PATH.fullmatch(path) or "//" in path or any(part in (".", "..") for part in path.split("/")):
        raise ValidationFailed(
            f"Path {path!r} must be an Airflow REST API path like /dags or /dags/DAG_ID/dagRuns: "
            "it starts with /, and has no query string, '..' segment or empty segment"
        )
    return path


def invoke(
    ctx: Context, *, name: str, principal: Principal, method: str, path: str,
    query: dict[str, Any] | None = None, body: dict[str, Any] | None = None,
) -> tuple[int, Any]:
    """A caller's call, to a path checked first (check_path)."""
    check_path(path)
    return call_airflow(ctx, name=name, principal=principal, method=method, path=path, query=query, body=body)


def call_airflow(
    ctx: Context, *, name: str, principal: Principal, method: str, path: str,
    query: dict[str, Any] | None = None, body: dict[str, Any] | None = None,
) -> tuple[int, Any]:
    """Hangar's own call on the caller's behalf: `path` is built by Hangar, its parts quoted."""
    env = get_environment(ctx, name=name)
    if env.webserver_url is None or env.running_revision is None:
        raise EnvironmentBusy(name, env.status)
    token = environment_token(ctx, name=name, principal=principal, valid_for=120)
    version = "v2" if parse_version(env.airflow_version)[0] >= 3 else "v1"
    try:
        response = httpx.request(
            method, f"{env.webserver_url}/api/{version}{path}", params=query or None, json=body,
            headers={"Authorization": f"Bearer {token.token}"}, timeout=60,
        )
    except httpx.HTTPError as exc:
        raise RestApiServerError(503, {"detail": f"the environment's web server did not answer: {exc}"}) from None
    try:
        payload: Any = response.json()
    except ValueError:
        payload = {"detail": response.text[:4096]}
    if 400 <= response.status_code < 500:
        raise RestApiClientError(response.status_code, payload)
    if response.status_code >= 500:
        raise RestApiServerError(response.status_code, payload)
    return response.status_code, payload
