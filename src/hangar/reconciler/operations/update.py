"""update: UPDATING -> AVAILABLE by the least disruptive path (hangar.domain.changes).

Every path but UPGRADE stages the new revision next to the running one and switches
one component at a time; a component that does not come up rolls back to the last
good revision (UPDATING -> ROLLING_BACK -> AVAILABLE). RUNTIME and UPGRADE changes
pass the pre-flight checks first, so a broken runtime never replaces a working one.

UPGRADE (another Airflow version): drain and stop, snapshot the metadata database,
migrate (or downgrade) it, start on the new runtime. Any failure after the stop restores
the snapshot and brings the old revision back.
"""
from __future__ import annotations

from hangar.domain import snapshots
from hangar.domain.changes import ChangeKind, plan_change
from hangar.domain.lifecycle import change_status
from hangar.domain.status import Status
from hangar.errors import ComponentFailed, HangarError
from hangar.reconciler.operation import AfterFailure, Failure, Operation, fail_with
from hangar.reconciler.staging import Target
from hangar.reconciler.steps import Steps
from hangar.runtime import upgrade
from hangar.schemas.operations import OperationKind
from hangar.store import repository


def run(steps: Steps, revision: int) -> None:
    steps.unwatch()
    with steps.ctx.store.session() as session:
        env = repository.get_by_id(session, steps.env_id)
        previous = env.running_revision
        old_spec = repository.get_spec(session, env.id, previous) if previous else None
        new_spec = repository.get_spec(session, env.id, revision)
    if previous is None or old_spec is None:  # it never ran: start it as a create would
        steps.wait_ready(steps.launch(steps.prepare(revision)))
        steps.finish(revision, Status.AVAILABLE, f"revision {revision} is running")
        return
    plan = plan_change(old_spec, new_spec, root=steps.layout.root, from_revision=previous, to_revision=revision)
    steps.record(f"change plan ({plan.kind}): " + "; ".join(plan.steps))
    old = steps.stage(previous)
    target = steps.stage(revision)
    if plan.kind in (ChangeKind.RUNTIME, ChangeKind.UPGRADE):
        steps.preflight(target, old)
    if plan.kind == ChangeKind.UPGRADE:
        if not _upgrade(steps, target, old):
            return
    else:
        try:
            steps.wait_ready(steps.go_live(target))
        except ComponentFailed as exc:
            steps.roll_back(old, exc)
            return
    steps.finish(revision, Status.AVAILABLE, f"revision {revision} is running ({plan.kind} change)")


def _upgrade(steps: Steps, target: Target, old: Target) -> bool:
    """False when it rolled back (the operation is then closed)."""
    ctx = steps.ctx
    steps.record("draining the scheduler and stopping the components")
    steps.stop(drain=True)
    steps.set_status(Status.CREATING_SNAPSHOT,
                     f"snapshotting the metadata database before Airflow {target.spec.airflow_version}")
    try:
        snapshot_id = snapshots.take_snapshot(ctx, env_id=steps.env_id, revision=old.revision, kind=snapshots.PRE_UPGRADE)
    except Exception:
        steps.set_status(Status.UPDATING, "the snapshot failed; starting the previous revision again")
        steps.wait_ready(steps.go_live(old))
        raise
    steps.set_status(Status.UPDATING, f"snapshot {snapshot_id} taken; migrating the metadata database")
    try:
        path = upgrade.plan_upgrade(current=old.spec.airflow_version, target=target.spec.airflow_version,
                                    allow_downgrade=True)
        if path.kind == "downgrade":
            upgrade.downgrade(old=target.runtime, new=old.runtime, url=target.db_url, progress=steps.progress(),
                              run_as=target.run_as)
        else:
            upgrade.migrate(old=old.runtime, new=target.runtime, url=target.db_url, progress=steps.progress(),
                            run_as=target.run_as)
        steps.wait_ready(steps.go_live(target))
    except HangarError as exc:
        steps.stop()
        steps.rolling_back(old.revision, exc)
        steps.record(f"restoring the metadata database from snapshot {snapshot_id}")
        snapshots.restore_database(ctx, env_id=steps.env_id, snapshot_id=snapshot_id)
        steps.wait_ready(steps.go_live(old))
        steps.rolled_back(old.revision)
        return False
    return True


def failed(failure: Failure) -> None:
    env = failure.env
    if env.running_revision is not None and env.status != Status.ROLLING_BACK:
        # nothing switched (pre-flight) or the switch was rolled back: the old revision serves on
        change_status(failure.session, env, Status.AVAILABLE, error_code=failure.code, error_message=failure.message,
                      reason=f"update to revision {failure.operation.revision} failed; revision "
                             f"{env.running_revision} keeps running: {failure.message}")
    else:
        fail_with(failure, Status.UPDATE_FAILED)


OPERATION = Operation(kind=OperationKind.UPDATE, run=run, on_failure=failed, after=AfterFailure.WATCH)
