"""Which environments start maintenance, with a fake clock: pending, inside the window, AVAILABLE."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hangar.context import Context
from hangar.domain import maintenance as domain
from hangar.schemas.spec import Spec
from hangar.domain.status import Status
from hangar.errors import DagImportErrors
from hangar.reconciler.loops import maintenance
from hangar.reconciler.reconciler import Reconciler
from hangar.reconciler.loops.maintenance import Candidate, due
from hangar.reconciler.queue import Work
from hangar.store import repository
from hangar.store.models import EnvironmentRow, OperationRow

INSIDE = datetime(2026, 3, 10, 3, 40, tzinfo=timezone.utc)  # Tuesday
OUTSIDE = datetime(2026, 3, 10, 6, 0, tzinfo=timezone.utc)
WINDOW = "TUE:03:30"


def candidate(**changes) -> Candidate:
    return Candidate(**{"env_id": "e", "status": Status.AVAILABLE, "pending": True, "window": WINDOW, **changes})


def test_due_needs_pending_maintenance_the_window_and_available() -> None:
    assert due([candidate()], now=INSIDE) == ["e"]
    assert due([candidate(pending=False)], now=INSIDE) == []
    assert due([candidate()], now=OUTSIDE) == []
    for status in Status:
        if status != Status.AVAILABLE:
            assert due([candidate(status=status)], now=INSIDE) == [], status


def test_due_uses_the_default_window_when_none_is_set() -> None:
    sunday = datetime(2026, 3, 15, 3, 10, tzinfo=timezone.utc)
    assert due([candidate(window=None)], now=sunday) == ["e"]
    assert due([candidate(window=None)], now=INSIDE) == []


def test_a_failure_in_this_window_waits_for_the_next_one() -> None:
    assert due([candidate(last_failure=INSIDE - timedelta(minutes=5))], now=INSIDE) == []
    last_week = INSIDE - timedelta(days=7)
    assert due([candidate(last_failure=last_week)], now=INSIDE) == ["e"]


def test_due_picks_among_many() -> None:
    candidates = [candidate(env_id="a"), candidate(env_id="b", window="WED:03:30"), candidate(env_id="c", pending=False),
                  candidate(env_id="d", status=Status.UPDATING), candidate(env_id="f", window="TUE:02:00")]
    assert due(candidates, now=INSIDE) == ["a", "f"]


# --- tick and failure over the store (no PostgreSQL or Airflow needed to decide) ---


def _environment(ctx: Context, *, window: str | None = WINDOW, status: Status = Status.AVAILABLE) -> str:
    env_id = repository.new_id()
    with ctx.store.session() as session:
        env = EnvironmentRow(id=env_id, name=f"e{env_id[:8]}", status=status, revision=1, running_revision=1,
                             last_good_revision=1, ports={}, database_name="x")
        session.add(env)
        session.flush()
        repository.add_revision(session, env, Spec(airflow_version="3.3.2", dags="/dags",
                                                   weekly_maintenance_window_start=window), 1)
    return env_id


def _env(ctx: Context, env_id: str) -> EnvironmentRow:
    with ctx.store.session() as session:
        return repository.get_by_id(session, env_id)


def test_tick_starts_pending_maintenance_only_inside_the_window(ctx: Context) -> None:
    submitted = []
    ctx.submit = lambda env_id, operation_id: submitted.append((env_id, operation_id))
    env_id = _environment(ctx)
    idle = _environment(ctx)  # nothing pending
    name = _env(ctx, env_id).name
    domain.request_maintenance(ctx, name=name, reason="patched urllib3", now=OUTSIDE)
    assert maintenance.tick(ctx, now=OUTSIDE) == [] and submitted == []
    assert _env(ctx, env_id).status == Status.AVAILABLE

    assert maintenance.tick(ctx, now=INSIDE) == [env_id]
    assert _env(ctx, env_id).status == Status.MAINTENANCE and _env(ctx, idle).status == Status.AVAILABLE
    [(_, operation_id)] = submitted
    with ctx.store.session() as session:
        operation = session.get_one(OperationRow, operation_id)
        assert operation.kind == "maintenance" and operation.revision == 1
        assert operation.steps[0]["epoch"] == 0 and operation.steps[0]["reason"] == "patched urllib3"
    assert maintenance.tick(ctx, now=INSIDE + timedelta(seconds=15)) == []  # busy: not twice
    state = domain.maintenance_status(ctx, name=name, now=INSIDE)
    assert state.pending and state.last_maintenance.outcome == "RUNNING"


def test_each_check_of_pending_maintenance_is_shown(ctx: Context) -> None:
    """So that a user (and an end-to-end test) can see the window is watched while nothing is due."""
    ctx.submit = lambda *_: None
    env_id = _environment(ctx)
    name = _env(ctx, env_id).name
    maintenance.tick(ctx, now=OUTSIDE)  # nothing pending: nothing to check
    assert domain.maintenance_status(ctx, name=name, now=OUTSIDE).last_checked_at is None
    domain.request_maintenance(ctx, name=name, reason="patched urllib3", now=OUTSIDE)
    assert domain.maintenance_status(ctx, name=name, now=OUTSIDE).last_checked_at is None
    for seconds in (15, 30):
        maintenance.tick(ctx, now=OUTSIDE + timedelta(seconds=seconds))
        assert domain.maintenance_status(ctx, name=name).last_checked_at == OUTSIDE + timedelta(seconds=seconds)


def test_a_failure_before_the_switch_returns_to_available_on_the_old_epoch(ctx: Context) -> None:
    ctx.submit = lambda *_: None
    env_id = _environment(ctx)
    name = _env(ctx, env_id).name
    domain.request_maintenance(ctx, name=name, reason="patched urllib3", now=OUTSIDE)
    maintenance.tick(ctx, now=INSIDE)
    with ctx.store.session() as session:
        repository.get_by_id(session, env_id).runtime_epoch = 1  # the handler had moved to the new epoch
        operation_id = repository.latest_operation(session, env_id).id

    error = DagImportErrors([])
    Reconciler(ctx).fail(Work(env_id=env_id, operation_id=operation_id), error)
    env = _env(ctx, env_id)
    assert env.status == Status.AVAILABLE and env.runtime_epoch == 0
    assert "maintenance failed" in env.status_reason and error.message in env.status_reason
    state = domain.maintenance_status(ctx, name=name, now=INSIDE)
    assert state.pending  # the rebuild is still wanted ...
    assert state.last_maintenance.outcome == "FAILED" and error.message in state.last_maintenance.error
    # ... but not again in this window
    assert maintenance.tick(ctx, now=INSIDE + timedelta(minutes=1)) == []
    assert maintenance.tick(ctx, now=INSIDE + timedelta(days=7)) == [env_id]


def test_a_failed_rollback_ends_update_failed(ctx: Context) -> None:
    ctx.submit = lambda *_: None
    env_id = _environment(ctx)
    domain.request_maintenance(ctx, name=_env(ctx, env_id).name, reason="x", now=OUTSIDE)
    maintenance.tick(ctx, now=INSIDE)
    with ctx.store.session() as session:
        env = repository.get_by_id(session, env_id)
        env.status = Status.ROLLING_BACK
        operation_id = repository.latest_operation(session, env_id).id
    Reconciler(ctx).fail(Work(env_id=env_id, operation_id=operation_id), DagImportErrors([]))
    assert _env(ctx, env_id).status == Status.UPDATE_FAILED


def test_epoch_zero_keeps_the_runtime_keys_and_a_new_epoch_gives_a_new_runtime() -> None:
    import hashlib

    from hangar.runtime.venvs import base_packages, runtime_key

    payload = "\0".join(["3.11", "3.3.2", *base_packages("3.3.2"), "requests"])
    legacy = hashlib.sha256(payload.encode()).hexdigest()[:16]
    assert runtime_key(python="3.11", airflow_version="3.3.2", requirements="requests\n") == legacy
    assert runtime_key(python="3.11", airflow_version="3.3.2", requirements="requests", epoch=0) == legacy
    keys = {runtime_key(python="3.11", airflow_version="3.3.2", requirements="requests", epoch=e) for e in range(4)}
    assert len(keys) == 4
