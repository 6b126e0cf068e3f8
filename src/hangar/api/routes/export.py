"""Native route that exports an environment for another engine (today: the Helm chart's values).

Read role: the export holds no secret, only the names of Kubernetes secrets to create.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from hangar.api.auth import principal, require
from hangar.api.deps import ContextDep
from hangar.domain import export
from hangar.schemas.export import ExportPublic

router = APIRouter(prefix="/api/v1", dependencies=[Depends(principal)], tags=["environments"])


@router.get("/environments/{name}/export", dependencies=[Depends(require("read"))])
def export_environment(
    name: str,
    c: ContextDep,
    format_: str = Query(export.HELM_VALUES, alias="format"),
    requirements_file: str = Query("requirements.txt", description="the file name the Dockerfile copies"),
) -> ExportPublic:
    return export.export_environment(c, name=name, format=format_, requirements_file=requirements_file)
