"""Native routes for an environment's maintenance under /api/v1/environments/{name}/maintenance.

Reading needs read; asking for a runtime rebuild in the next window needs what an update
needs (Op or higher). The request only records the rebuild: it runs in the window.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends

from hangar.api.auth import principal, require
from hangar.api.deps import ContextDep
from hangar.domain import maintenance
from hangar.domain.maintenance import MaintenancePublic, MaintenanceRequest

router = APIRouter(prefix="/api/v1/environments/{name}/maintenance", dependencies=[Depends(principal)],
                   tags=["maintenance"])


@router.get("", dependencies=[Depends(require("read"))])
def show(name: str, c: ContextDep) -> MaintenancePublic:
    return maintenance.maintenance_status(c, name=name)


@router.post("", status_code=202, name="maintenance.request", dependencies=[Depends(require("update"))])
def request_(name: str, c: ContextDep, body: MaintenanceRequest | None = None) -> MaintenancePublic:
    body = body or MaintenanceRequest()
    return maintenance.request_maintenance(c, name=name, reason=body.reason)
