"""Native routes for access keys and the audit log (Admin only)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from hangar.api.auth import require
from hangar.api.deps import ContextDep
from hangar.domain import access
from hangar.domain import audit as audit_log
from hangar.schemas.access import AccessKeyCreated, AccessKeyPublic, AccessKeyRequest
from hangar.schemas.audit import AuditEntry

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require("admin"))], tags=["access"])


@router.post("/access-keys", status_code=201, name="access_keys.create")
def create_key(body: AccessKeyRequest, c: ContextDep) -> AccessKeyCreated:
    return access.create_access_key(c, role=access.Role.parse(body.role), description=body.description)


@router.get("/access-keys")
def list_keys(c: ContextDep) -> list[AccessKeyPublic]:
    return access.list_access_keys(c)


@router.delete("/access-keys/{access_key_id}", status_code=204, name="access_keys.revoke")
def revoke_key(access_key_id: str, c: ContextDep) -> None:
    access.revoke_access_key(c, access_key_id=access_key_id)


@router.get("/audit")
def audit(c: ContextDep, limit: int = Query(200, ge=1, le=10_000)) -> list[AuditEntry]:
    return audit_log.read_audit(c, limit=limit)
