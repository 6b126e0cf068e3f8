"""Scheduled snapshots with a fake clock: when one is due, and what retention removes."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from hangar.context import Context
from hangar.schemas.spec import Spec
from hangar.domain.status import Status
from hangar.reconciler.loops import snapshot_schedule
from hangar.reconciler.loops.snapshot_schedule import Taken, due, expired, next_time
from hangar.store import repository
from hangar.store import snapshots as store
from hangar.store.models import EnvironmentRow, OperationRow, RevisionRow, SnapshotRow

T0 = datetime(2026, 3, 10, 10, 17, 30, tzinfo=timezone.utc)


def test_next_time_follows_the_cron_expression() -> None:
    assert next_time("* * * * *", after=T0) == datetime(2026, 3, 10, 10, 18, tzinfo=timezone.utc)
    assert next_time("0 3 * * *", after=T0) == datetime(2026, 3, 11, 3, 0, tzinfo=timezone.utc)
    assert next_time("*/15 * * * *", after=T0) == datetime(2026, 3, 10, 10, 30, tzinfo=timezone.utc)


def test_first_snapshot_is_due_at_the_first_cron_time_after_the_schedule_was_set() -> None:
    daily = "0 3 * * *"
    assert not due(daily, last=None, since=T0, now=T0 + timedelta(hours=16))
    assert due(daily, last=None, since=T0, now=datetime(2026, 3, 11, 3, 0, tzinfo=timezone.utc))


def test_next_snapshot_counts_from_the_last_one() -> None:
    last = datetime(2026, 3, 11, 3, 0, 4, tzinfo=timezone.utc)
    daily = "0 3 * * *"
    assert not due(daily, last=last, since=T0, now=last + timedelta(hours=23))
    assert due(daily, last=last, since=T0, now=last + timedelta(hours=24))
    # days of downtime give one snapshot, then the schedule resumes from it
    assert due(daily, last=last, since=T0, now=last + timedelta(days=5))


def _taken(kind: str, minutes: int, ident: str | None = None) -> Taken:
    return Taken(id=ident or f"{kind}-{minutes}", kind=kind, created_at=T0 + timedelta(minutes=minutes))


def test_retention_removes_the_oldest_scheduled_only() -> None:
    taken = [_taken("scheduled", m) for m in (5, 1, 3, 4, 2)] + [_taken("manual", 0), _taken("pre-upgrade", -1)]
    assert expired(taken, retention=2) == ["scheduled-1", "scheduled-2", "scheduled-3"]
    assert expired(taken, retention=5) == []
    assert expired([_taken("manual", m) for m in range(20)], retention=1) == []


def test_retention_defaults_to_seven() -> None:
    taken = [_taken("scheduled", m) for m in range(10)]
    assert expired(taken, retention=None) == ["scheduled-0", "scheduled-1", "scheduled-2"]


# --- tick: the same rules over the store (no PostgreSQL or Airflow needed to decide) ---


def _environment(ctx: Context, *, schedule: str | None, retention: int | None, status: Status = Status.AVAILABLE) -> str:
    env_id = repository.new_id()
    with ctx.store.session() as session:
        env = EnvironmentRow(id=env_id, name=f"e{env_id[:8]}", status=status, revision=1, running_revision=1,
                             last_good_revision=1, ports={}, database_name="x", created_at=T0)
        session.add(env)
        session.flush()
        spec = Spec(airflow_version="3.3.2", dags="/dags", snapshot_schedule=schedule, snapshot_retention=retention)
        repository.add_revision(session, env, spec, 1).created_at = T0
    return env_id


def _snapshot(ctx: Context, env_id: str, *, kind: str, minutes: int) -> Path:
    path = ctx.settings.snapshots_dir / env_id / f"{kind}-{minutes}.tar.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"archive")
    with ctx.store.session() as session:
        store.add(session, ctx.envelope, fernet_key="k", row=SnapshotRow(
            id=f"{env_id}-{kind}-{minutes}", environment_id=env_id, environment_name="e", revision=1, kind=kind,
            created_at=T0 + timedelta(minutes=minutes), path=str(path), size=7, sha256="0" * 64,
            airflow_version="3.3.2"))
    return path


def _status(ctx: Context, env_id: str) -> str:
    with ctx.store.session() as session:
        return repository.get_by_id(session, env_id).status


def test_tick_requests_a_due_snapshot_once(ctx: Context) -> None:
    submitted = []
    ctx.submit = lambda env_id, operation_id: submitted.append(env_id)
    env_id = _environment(ctx, schedule="*/10 * * * *", retention=None)
    snapshot_schedule.tick(ctx, now=T0 + timedelta(minutes=1))  # 10:18:30: next is 10:20
    assert submitted == [] and _status(ctx, env_id) == Status.AVAILABLE
    snapshot_schedule.tick(ctx, now=T0 + timedelta(minutes=3))  # 10:20:30
    assert submitted == [env_id] and _status(ctx, env_id) == Status.CREATING_SNAPSHOT
    snapshot_schedule.tick(ctx, now=T0 + timedelta(minutes=3, seconds=15))  # busy: not twice
    assert submitted == [env_id]

    # the snapshot failed and the environment is AVAILABLE again: the next try waits for 10:30
    with ctx.store.session() as session:
        operation = session.get_one(OperationRow, repository.latest_operation(session, env_id).id)
        operation.done, operation.started_at = True, T0 + timedelta(minutes=3)
        repository.get_by_id(session, env_id).status = Status.AVAILABLE
    snapshot_schedule.tick(ctx, now=T0 + timedelta(minutes=4))
    assert submitted == [env_id]
    snapshot_schedule.tick(ctx, now=T0 + timedelta(minutes=13))
    assert submitted == [env_id, env_id]


def test_tick_leaves_environments_without_a_schedule_or_not_available(ctx: Context) -> None:
    submitted = []
    ctx.submit = lambda env_id, operation_id: submitted.append(env_id)
    _environment(ctx, schedule=None, retention=None)
    _environment(ctx, schedule="* * * * *", retention=None, status=Status.UPDATING)
    snapshot_schedule.tick(ctx, now=T0 + timedelta(hours=1))
    assert submitted == []


def test_tick_applies_retention_to_scheduled_snapshots_only(ctx: Context) -> None:
    env_id = _environment(ctx, schedule="0 3 * * *", retention=1)
    old = [_snapshot(ctx, env_id, kind="scheduled", minutes=m) for m in (1, 2, 3)]
    manual = _snapshot(ctx, env_id, kind="manual", minutes=0)
    upgrade = _snapshot(ctx, env_id, kind="pre-upgrade", minutes=-5)
    snapshot_schedule.tick(ctx, now=T0 + timedelta(minutes=10))
    with ctx.store.session() as session:
        left = sorted(row.id for row in store.list_for(session, env_id))
    assert left == sorted([f"{env_id}-scheduled-3", f"{env_id}-manual-0", f"{env_id}-pre-upgrade--5"])
    assert [p.exists() for p in old] == [False, False, True]
    assert manual.exists() and upgrade.exists()


def test_tick_removes_snapshots_of_deleted_environments(ctx: Context) -> None:
    env_id = _environment(ctx, schedule=None, retention=None, status=Status.DELETED)
    path = _snapshot(ctx, env_id, kind="manual", minutes=1)
    snapshot_schedule.tick(ctx, now=T0)
    assert not path.exists()
    with ctx.store.session() as session:
        assert store.list_for(session, env_id) == []
        assert session.get(RevisionRow, (env_id, 1)) is not None
