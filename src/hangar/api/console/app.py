"""Mounts the console's pages and static assets on the control plane's app."""
from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from hangar.api.console.pages import admin, alerts, environments, observe, overview, runs, signin, snapshots, spec_forms
from hangar.api.console.render import HERE


class CachedStatic(StaticFiles):
    """Assets change only with a release: browsers may keep them for a day."""

    def file_response(self, *args, **kwargs):
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response


def install(app: FastAPI) -> None:
    app.mount("/console/static", CachedStatic(directory=str(HERE / "static")), name="console-static")
    for module in (signin, environments, spec_forms, overview, runs, observe, snapshots, alerts, admin):
        app.include_router(module.router)
