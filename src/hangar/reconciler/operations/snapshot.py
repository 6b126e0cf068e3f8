"""snapshot: CREATING_SNAPSHOT -> AVAILABLE; the components keep running and stay watched.

It runs on the environment's queue like an update, so it never races one; a recorded
snapshot is not taken twice. A failure returns to AVAILABLE with the error in the reason."""
from __future__ import annotations

from hangar.domain import snapshots
from hangar.domain.lifecycle import change_status
from hangar.domain.status import Status
from hangar.reconciler import launching
from hangar.reconciler.operation import AfterFailure, Failure, Operation
from hangar.reconciler.steps import Steps
from hangar.schemas.operations import OperationKind


def run(steps: Steps, revision: int) -> None:
    ctx = steps.ctx
    assert steps.work.operation_id is not None
    snapshot_id, kind = snapshots.requested_snapshot(ctx, operation_id=steps.work.operation_id)
    if ctx.backend.get(steps.env_id) is None:  # the control plane restarted mid-snapshot: adopt the processes
        launching.resume(ctx, steps.env_id, revision)
    steps.record(f"taking {kind} snapshot {snapshot_id} (metadata database, DAGs, plugins)")
    snapshots.take_snapshot(ctx, env_id=steps.env_id, revision=revision, kind=kind, snapshot_id=snapshot_id)
    steps.finish(revision, Status.AVAILABLE, f"{kind} snapshot {snapshot_id} taken")


def failed(failure: Failure) -> None:
    if failure.env.status == Status.CREATING_SNAPSHOT:
        # the environment kept running: back to AVAILABLE, the error kept in the event's reason
        change_status(failure.session, failure.env, Status.AVAILABLE, reason=f"snapshot failed: {failure.message}")
    else:
        failure.env.status_reason = f"snapshot failed: {failure.message}"


OPERATION = Operation(kind=OperationKind.SNAPSHOT, run=run, on_failure=failed, after=AfterFailure.NOTHING)
