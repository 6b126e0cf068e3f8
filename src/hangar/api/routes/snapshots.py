"""Native routes for environment snapshots under /api/v1/environments/{name}/snapshots.

Taking, restoring and deleting a snapshot need the right an environment update needs
(Op or higher); restoring into a new environment creates one, so it needs Admin;
listing needs read.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from hangar.api.auth import principal, require
from hangar.api.deps import ContextDep, Updater
from hangar.domain import snapshots
from hangar.domain.snapshots import SnapshotPublic, SnapshotRequested, SnapshotRestore
from hangar.schemas.public import EnvironmentPublic

router = APIRouter(prefix="/api/v1/environments/{name}/snapshots", dependencies=[Depends(principal)],
                   tags=["snapshots"])


@router.post("", status_code=202, name="snapshots.create", dependencies=[Depends(require("update"))])
def create(name: str, c: ContextDep) -> SnapshotRequested:
    return snapshots.create_snapshot(c, name=name)


@router.get("", dependencies=[Depends(require("read"))])
def list_(name: str, c: ContextDep) -> list[SnapshotPublic]:
    return snapshots.list_snapshots(c, name=name)


@router.delete("/{snapshot_id}", status_code=204, name="snapshots.delete", dependencies=[Depends(require("update"))])
def delete(name: str, snapshot_id: str, c: ContextDep) -> Response:
    snapshots.delete_snapshot(c, name=name, snapshot_id=snapshot_id)
    return Response(status_code=204)


@router.post("/{snapshot_id}/restore", status_code=202, name="snapshots.restore")
def restore(name: str, snapshot_id: str, c: ContextDep, caller: Updater, body: SnapshotRestore | None = None) -> EnvironmentPublic:
    body = body or SnapshotRestore()
    if body.into is not None:
        caller.require("admin")  # a clone is a new environment
    return snapshots.restore_snapshot(c, name=name, snapshot_id=snapshot_id, into=body.into)
