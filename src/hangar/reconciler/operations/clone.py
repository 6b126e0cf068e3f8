"""clone: CREATING -> AVAILABLE, a new environment whose database is loaded from a snapshot
before its first launch; a failure is CREATE_FAILED with whatever started stopped.

The database is loaded before staging, which then keeps it (an existing database is not
copied from the template)."""
from __future__ import annotations

from hangar.domain.status import Status
from hangar.reconciler.operation import AfterFailure, Failure, Operation, fail_with
from hangar.reconciler.snapshot_steps import load_database, unpack_requested
from hangar.reconciler.steps import Steps
from hangar.runtime.snapshot_archive import DB_DUMP
from hangar.schemas.operations import OperationKind
from hangar.store import repository


def run(steps: Steps, revision: int) -> None:
    snapshot_id, folder = unpack_requested(steps)
    with steps.ctx.store.session() as session:
        database = repository.get_by_id(session, steps.env_id).database_name
    load_database(steps, folder, what=f"metadata database {database} from snapshot {snapshot_id}")
    (folder / DB_DUMP).unlink(missing_ok=True)
    steps.wait_ready(steps.launch(steps.prepare(revision)))
    steps.finish(revision, Status.AVAILABLE, f"cloned from snapshot {snapshot_id}")


def failed(failure: Failure) -> None:
    fail_with(failure, Status.CREATE_FAILED)


OPERATION = Operation(kind=OperationKind.CLONE, run=run, on_failure=failed, after=AfterFailure.STOP)
