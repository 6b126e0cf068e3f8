"""The FastAPI application. The control plane lives as long as the app does."""
from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from hangar import __version__
from hangar.api import admission, audit, errors, timing
from hangar.api.auth import load_or_create_admin_key, principal
from hangar.api.console import app as console
from hangar.api.mwaa import routes as mwaa
from hangar.api.routes import access, buckets, environments, export, keys, maintenance, snapshots
from hangar.api.routes import alerts, git, git_dags, logs, metrics, workers
from hangar.controlplane import ControlPlane
from hangar.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        plane = ControlPlane(settings)
        app.state.admin_key = load_or_create_admin_key(settings.api_key_file)
        app.state.ctx = plane.ctx
        plane.start()
        try:
            yield
        finally:
            plane.close()

    # the API's description answers only with a key, like every route but /health
    app = FastAPI(title="Hangar", version=__version__, lifespan=lifespan, openapi_url=None, docs_url=None,
                  redoc_url=None)
    errors.install(app)
    admission.install(app)
    audit.install(app)  # it records the callers admission refuses
    timing.install(app)  # outermost: refusals take time too
    app.include_router(environments.router)
    app.include_router(access.router)
    app.include_router(buckets.router)
    app.include_router(keys.router)
    app.include_router(snapshots.router)
    app.include_router(maintenance.router)
    app.include_router(export.router)
    app.include_router(workers.router)
    app.include_router(logs.router)
    app.include_router(metrics.router)
    app.include_router(alerts.router)
    app.include_router(git.router)
    app.include_router(git_dags.router)
    app.include_router(git_dags.hooks)
    console.install(app)
    app.include_router(mwaa.router)

    @app.get("/api/v1/openapi.json", dependencies=[Depends(principal)], include_in_schema=False)
    def openapi_document() -> dict:
        return app.openapi()

    @app.get("/health", tags=["health"])
    def health() -> dict:
        return {"status": "ok", "version": __version__}

    return app
