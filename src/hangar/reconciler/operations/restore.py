"""restore: UPDATING -> AVAILABLE running `revision` (the snapshot's spec) on the snapshot's database.

The archive is verified and unpacked, and the revision staged (runtime, configuration,
plugins) while the old revision still runs; only then are the components stopped and the
database replaced. A corrupted archive or a runtime that does not build therefore leaves
the environment running as it was. A failure after that is UPDATE_FAILED."""
from __future__ import annotations

from hangar.domain import snapshots
from hangar.domain.status import Status
from hangar.reconciler.operation import AfterFailure, Failure, Operation, fail_with
from hangar.reconciler.snapshot_steps import load_database, unpack_requested
from hangar.reconciler.steps import Steps
from hangar.runtime.snapshot_archive import DB_DUMP
from hangar.schemas.operations import OperationKind


def run(steps: Steps, revision: int) -> None:
    snapshot_id, folder = unpack_requested(steps)
    target = steps.stage(revision)  # runtime and files built while the old revision serves
    steps.record("stopping components")
    steps.stop()
    load_database(steps, folder, what=f"the metadata database from snapshot {snapshot_id}")
    snapshots.adopt_fernet_key(steps.ctx, env_id=steps.env_id, snapshot_id=snapshot_id)
    (folder / DB_DUMP).unlink(missing_ok=True)
    steps.wait_ready(steps.go_live(target))
    steps.finish(revision, Status.AVAILABLE, f"snapshot {snapshot_id} restored as revision {revision}")


def failed(failure: Failure) -> None:
    fail_with(failure, Status.UPDATE_FAILED)


OPERATION = Operation(kind=OperationKind.RESTORE, run=run, on_failure=failed, after=AfterFailure.WATCH)
