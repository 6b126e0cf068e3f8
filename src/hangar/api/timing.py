"""How long each API request takes, by method and route template (not the raw path, so that
environment names do not make new series): hangar_api_request_duration_seconds."""
from __future__ import annotations

import time

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send


class TimingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        try:
            await self.app(scope, receive, send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            scope["app"].state.ctx.telemetry.api_latency.labels(scope["method"], route).observe(time.monotonic() - started)


def install(app: FastAPI) -> None:
    app.add_middleware(TimingMiddleware)
