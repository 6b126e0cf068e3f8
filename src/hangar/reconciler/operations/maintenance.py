"""maintenance: MAINTENANCE -> AVAILABLE, the running revision again on a runtime built anew.

The running revision is staged again on a new runtime epoch (a runtime built with uv
--refresh), checked by pre-flight against the runtime in use, and switched to one
component at a time, the scheduler draining. The revision number does not change.

Failure rule: a failure before the switch leaves everything as it ran (MAINTENANCE ->
AVAILABLE, the error in the event's reason); a component that does not come up on the
new runtime rolls back (MAINTENANCE -> ROLLING_BACK -> AVAILABLE, the error in
last_update). Either way the runtime epoch returns to the one in use and the maintenance
stays pending. When to start one is hangar.reconciler.loops.maintenance's business.
"""
from __future__ import annotations

from hangar.context import Context
from hangar.domain.lifecycle import change_status
from hangar.domain.redaction import redact_failure
from hangar.domain.status import Status
from hangar.errors import ComponentFailed
from hangar.reconciler.operation import AfterFailure, Failure, Operation, fail_with
from hangar.reconciler.steps import Steps
from hangar.schemas.operations import OperationKind, Outcome, StepRecord
from hangar.store import repository
from hangar.store.models import OperationRow


def run(steps: Steps, revision: int) -> None:
    ctx = steps.ctx
    assert steps.work.operation_id is not None
    steps.unwatch()
    before = _first_step(ctx, steps.work.operation_id).epoch
    assert before is not None  # recorded when the maintenance started (hangar.domain.maintenance)
    _set_epoch(ctx, env_id=steps.env_id, epoch=before)  # an interrupted run starts again from the runtime in use
    old = steps.stage(revision)
    _set_epoch(ctx, env_id=steps.env_id, epoch=before + 1)
    steps.record(f"rebuilding the runtime of revision {revision} for newer releases "
                 f"(runtime epoch {before + 1}, uv --refresh)")
    target = steps.stage(revision)
    steps.preflight(target, old)
    try:
        steps.wait_ready(steps.go_live(target))
    except ComponentFailed as exc:
        _set_epoch(ctx, env_id=steps.env_id, epoch=before)
        text = "maintenance failed: " + redact_failure(ctx, env_id=steps.env_id, text=exc.message)
        with ctx.store.session() as session:
            steps.record_in(session, text, error=text)
        steps.roll_back(old, exc)
        return
    _done(steps, revision=revision, runtime=target.runtime.key)


def failed(failure: Failure) -> None:
    """In the failure's transaction: the runtime in use stays in use."""
    env = failure.env
    steps = repository.steps_of(failure.operation)
    if steps and steps[0].epoch is not None:
        env.runtime_epoch = steps[0].epoch
    if env.status == Status.MAINTENANCE:  # nothing switched: the old runtime serves on
        change_status(failure.session, env, Status.AVAILABLE,
                      reason=f"maintenance failed; revision {env.running_revision} keeps running on its runtime: "
                             f"{failure.message}")
    elif env.status == Status.ROLLING_BACK:  # the way back failed too
        fail_with(failure, Status.UPDATE_FAILED)


def _first_step(ctx: Context, operation_id: int) -> StepRecord:
    with ctx.store.session() as session:
        return repository.steps_of(session.get_one(OperationRow, operation_id))[0]


def _set_epoch(ctx: Context, *, env_id: str, epoch: int) -> None:
    with ctx.store.session() as session:
        repository.get_by_id(session, env_id).runtime_epoch = epoch


def _done(steps: Steps, *, revision: int, runtime: str) -> None:
    with steps.ctx.store.session() as session:
        env = repository.get_by_id(session, steps.env_id)
        operation = session.get_one(OperationRow, steps.work.operation_id)
        repository.append_step(operation, StepRecord(step="done", outcome=Outcome.DONE))
        # a request made while this ran, with another reason, waits for the next window
        if env.maintenance_pending == repository.steps_of(operation)[0].reason:
            env.maintenance_pending = env.maintenance_requested_at = None
        change_status(session, env, Status.AVAILABLE,
                      reason=f"maintenance done: revision {revision} runs on the rebuilt runtime {runtime}")
    steps.ctx.backend.watch(steps.env_id)


OPERATION = Operation(kind=OperationKind.MAINTENANCE, run=run, on_failure=failed, after=AfterFailure.WATCH)
