"""Every mutating call is written to the audit log: who, what, when, outcome.

A middleware, so no route can forget it. The action is the route's name (the
MWAA operation name for MWAA routes), the target its `Name`/`name`/ARN path
parameter; request bodies are never recorded.
"""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request

from hangar.domain import access

log = logging.getLogger(__name__)
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


def install(app: FastAPI) -> None:
    @app.middleware("http")
    async def audit(request: Request, call_next):
        response = await call_next(request)
        if request.method in MUTATING:
            route = request.scope.get("route")
            params = request.scope.get("path_params") or {}
            target = params.get("Name") or params.get("name") or params.get("ResourceArn")
            outcome = "success" if response.status_code < 400 else response.headers.get("x-amzn-errortype", "error")
            try:
                access.record(
                    request.app.state.ctx, principal=getattr(request.state, "principal", None),
                    action=getattr(route, "name", None) or f"{request.method} {request.url.path}",
                    target=target, outcome=outcome.split(":")[0], status_code=response.status_code,
                )
            except Exception:  # the audit write must not turn a done call into an error
                log.exception("could not write the audit record")
        return response
