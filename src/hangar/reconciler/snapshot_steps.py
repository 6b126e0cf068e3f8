"""Steps that restore and clone share: the requested snapshot verified and unpacked, and
its metadata database loaded. A load replaces the database whole, and an unpack starts
from an empty folder, so both are safe to run again after a crash."""
from __future__ import annotations

from pathlib import Path

from hangar.domain import snapshots
from hangar.reconciler.steps import Steps
from hangar.runtime.snapshot_archive import DB_DUMP


def unpack_requested(steps: Steps) -> tuple[str, Path]:
    """(snapshot id, unpacked folder) of the snapshot the operation was opened for."""
    assert steps.work.operation_id is not None
    snapshot_id, _ = snapshots.requested_snapshot(steps.ctx, operation_id=steps.work.operation_id)
    steps.unwatch()
    steps.record(f"verifying and unpacking snapshot {snapshot_id}")
    return snapshot_id, snapshots.unpack(steps.ctx, env_id=steps.env_id, snapshot_id=snapshot_id)


def load_database(steps: Steps, folder: Path, *, what: str) -> None:
    """Load the unpacked dump into the environment's database; `what` names it for the record."""
    steps.record(f"loading {what}")
    snapshots.load_database(steps.ctx, env_id=steps.env_id, dump=folder / DB_DUMP)
