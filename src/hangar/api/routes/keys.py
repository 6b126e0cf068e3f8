"""Native routes for KMS keys (Admin only) and an environment's fernet key rotation (Op or higher).

A key is addressed by its id, its alias or an ARN; aliases hold slashes, so the path
parameter takes the rest of the path. It is called `name` so that the audit log
records it as the call's target, as it does for environments.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends

from hangar.api.auth import principal, require
from hangar.api.deps import ContextDep
from hangar.domain import environments, keys
from hangar.schemas.keys import KeyCreate, KeyPublic, KeyRotated
from hangar.schemas.public import EnvironmentPublic

router = APIRouter(prefix="/api/v1", dependencies=[Depends(principal)], tags=["keys"])
admin = [Depends(require("admin"))]


@router.post("/keys", status_code=201, name="keys.create", dependencies=admin)
def create(body: KeyCreate, c: ContextDep) -> KeyPublic:
    return keys.create_key(c, alias=body.alias, description=body.description)


@router.get("/keys", dependencies=admin)
def list_(c: ContextDep) -> list[KeyPublic]:
    return keys.list_keys(c)


@router.post("/keys/{name:path}/rotate", name="keys.rotate", dependencies=admin)
def rotate(name: str, c: ContextDep) -> KeyRotated:
    return keys.rotate_key(c, key=name)


@router.get("/keys/{name:path}", dependencies=admin)
def get(name: str, c: ContextDep) -> KeyPublic:
    return keys.get_key(c, key=name)


@router.post("/environments/{name}/rotate-fernet", status_code=202, name="environments.rotate_fernet",
             dependencies=[Depends(require("update"))], tags=["environments"])
def rotate_fernet(name: str, c: ContextDep) -> EnvironmentPublic:
    return environments.rotate_fernet(c, name=name)
