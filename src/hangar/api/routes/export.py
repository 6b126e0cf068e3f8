"""Native route that exports an environment for another engine (today: the Helm chart's values).

Read role: the export holds no secret, only the names of Kubernetes secrets to create.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from hangar.api.auth import principal, require
from hangar.context import Context
from hangar.domain import export
from hangar.domain.export import ExportPublic

router = APIRouter(prefix="/api/v1", dependencies=[Depends(principal)], tags=["environments"])


def ctx(request: Request) -> Context:
    return request.app.state.ctx


@router.get("/environments/{name}/export", dependencies=[Depends(require("read"))])
def export_environment(
    name: str,
    format_: str = Query(export.HELM_VALUES, alias="format"),
    requirements_file: str = Query("requirements.txt", description="the file name the Dockerfile copies"),
    c: Context = Depends(ctx),
) -> ExportPublic:
    return export.export_environment(c, name=name, format=format_, requirements_file=requirements_file)
