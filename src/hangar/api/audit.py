"""Every mutating call is written to the audit log: who, what, when, outcome.

A plain ASGI middleware, so no route can forget it and reads pay nothing. The
action is the route's name (the MWAA operation name for MWAA routes), the target
its `Name`/`name`/ARN path parameter; request bodies are never recorded.
"""
from __future__ import annotations

import logging

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hangar.domain import audit

log = logging.getLogger(__name__)
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
# Calls that change nothing but a liveness record and come every few seconds from each joined host:
# only their refusals are audited, or they would bury every other entry.
ROUTINE = frozenset({"workers.heartbeat"})


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING:
            await self.app(scope, receive, send)
            return
        outcome: dict = {}

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome["status"] = message["status"]
                headers = dict(message.get("headers") or [])
                outcome["error"] = headers.get(b"x-amzn-errortype", b"").decode()
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            self._record(scope, outcome)

    @staticmethod
    def _record(scope: Scope, outcome: dict) -> None:
        route = scope.get("route")
        params = scope.get("path_params") or {}
        status = outcome.get("status", 500)
        if getattr(route, "name", None) in ROUTINE and status < 400:
            return
        result = "success" if status < 400 else (outcome.get("error") or "error").split(":")[0]
        state = scope.get("state") or {}
        try:
            audit.record(
                scope["app"].state.ctx, principal=state.get("principal"),
                action=getattr(route, "name", None) or f"{scope['method']} {scope['path']}",
                target=params.get("Name") or params.get("name") or params.get("ResourceArn"),
                outcome=result, status_code=status, source=(scope.get("client") or (None,))[0],
            )
        except Exception:  # the audit write must not turn a finished call into an error
            log.exception("could not write the audit record")


def install(app: FastAPI) -> None:
    app.add_middleware(AuditMiddleware)
