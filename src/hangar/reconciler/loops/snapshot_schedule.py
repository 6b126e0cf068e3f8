"""Scheduled snapshots: a cron expression per environment, and retention of the newest N.

`due` and `expired` are pure (the clock is a parameter), so the rules are tested
without waiting. `tick` applies them once to every environment; `loop` calls `tick`
every Settings.snapshot_schedule_check_seconds on a daemon thread of the control plane.

Rules:
- The next snapshot is due at the first cron time after the last scheduled snapshot
  (or the last attempt at one, so a failing snapshot waits for the next time), or,
  before there is one, after the running revision was made (when the schedule was
  set). A control plane that was down for a while takes one snapshot, not one per
  missed time.
- A snapshot is only requested while the environment is AVAILABLE; it goes through the
  environment's queue like any snapshot, so it never races an update.
- Retention counts scheduled snapshots only (snapshot_retention, DEFAULT_RETENTION when
  unset): manual and pre-upgrade snapshots are never removed by it, and neither is a
  snapshot an unfinished operation restores from.
- Snapshots of deleted environments can no longer be reached by name; they are removed.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from croniter import croniter
from sqlalchemy import select

from hangar.schemas.operations import OperationKind
from hangar.context import Context
from hangar.domain import snapshots
from hangar.domain.status import Status
from hangar.store import repository
from hangar.store import snapshots as store
from hangar.store.models import EnvironmentRow, OperationRow, RevisionRow, SnapshotRow, utcnow

log = logging.getLogger(__name__)

DEFAULT_RETENTION = 7


@dataclass(frozen=True, kw_only=True)
class Taken:
    """A snapshot as retention sees it."""

    id: str
    kind: str
    created_at: datetime


def next_time(schedule: str, *, after: datetime) -> datetime:
    return croniter(schedule, after).get_next(datetime)


def due(schedule: str, *, last: datetime | None, since: datetime, now: datetime) -> bool:
    """Whether a scheduled snapshot is due at `now`.

    `last` is the newest scheduled snapshot's time, `since` when the schedule took effect."""
    return next_time(schedule, after=last or since) <= now


def expired(taken: Iterable[Taken], *, retention: int | None) -> list[str]:
    """The scheduled snapshots beyond the `retention` newest, oldest first; other kinds never."""
    keep = DEFAULT_RETENTION if retention is None else retention
    scheduled = sorted((t for t in taken if t.kind == snapshots.SCHEDULED), key=lambda t: (t.created_at, t.id),
                       reverse=True)
    return [t.id for t in reversed(scheduled[keep:])]


def tick(ctx: Context, *, now: datetime | None = None) -> None:
    """Request the snapshots that are due and remove the ones retention lets go."""
    now = now or utcnow()
    with ctx.store.session() as session:
        plans = []
        for env in repository.list_live(session):
            if env.running_revision is None:
                continue
            spec = repository.get_spec(session, env.id, env.running_revision)
            if spec.snapshot_schedule is None and spec.snapshot_retention is None:
                continue
            taken = [Taken(id=r.id, kind=r.kind, created_at=r.created_at) for r in store.list_for(session, env.id)]
            since = session.get_one(RevisionRow, (env.id, env.running_revision)).created_at
            last = max(filter(None, [_last_attempt(session, env.id),
                                     *(t.created_at for t in taken if t.kind == snapshots.SCHEDULED)]), default=None)
            plans.append((env.id, env.status, spec.snapshot_schedule, spec.snapshot_retention, taken, since, last))
        gone = _of_deleted_environments(session)
    for env_id, status, schedule, retention, taken, since, last in plans:
        _apply(ctx, env_id=env_id, status=status, schedule=schedule, retention=retention, taken=taken, since=since,
               last=last, now=now)
    for env_id, snapshot_id in gone:
        snapshots.delete_expired(ctx, env_id=env_id, snapshot_ids=[snapshot_id])


def loop(ctx: Context, *, stop: threading.Event, clock: Callable[[], datetime] = utcnow) -> None:
    """Run `tick` until `stop` is set; one environment's failure never stops the others' schedule."""
    while not stop.wait(ctx.settings.snapshot_schedule_check_seconds):
        try:
            tick(ctx, now=clock())
        except Exception:
            log.exception("scheduled snapshots: the check failed")


def _apply(ctx: Context, *, env_id: str, status: str, schedule: str | None, retention: int | None,
           taken: list[Taken], since: datetime, last: datetime | None, now: datetime) -> None:
    try:
        if schedule is not None and status == Status.AVAILABLE and due(schedule, last=last, since=since, now=now):
            snapshot_id = snapshots.request_scheduled_snapshot(ctx, env_id=env_id)
            if snapshot_id:
                log.info("environment %s: scheduled snapshot %s requested", env_id, snapshot_id)
        old = expired(taken, retention=retention)
        if old:
            snapshots.delete_expired(ctx, env_id=env_id, snapshot_ids=old)
    except Exception:
        log.exception("scheduled snapshots of environment %s failed", env_id)


def _last_attempt(session, env_id: str) -> datetime | None:
    """When the newest scheduled snapshot operation started: a failed one waits for the next cron time."""
    operations = session.scalars(select(OperationRow).where(OperationRow.environment_id == env_id,
                                                            OperationRow.kind == OperationKind.SNAPSHOT)
                                 .order_by(OperationRow.id.desc()).limit(10))
    return next((op.started_at for op in operations
                 if op.steps and repository.steps_of(op)[0].kind == snapshots.SCHEDULED), None)


def _of_deleted_environments(session) -> list[tuple[str, str]]:
    rows = session.execute(select(EnvironmentRow.id, SnapshotRow.id)
                           .join(SnapshotRow, SnapshotRow.environment_id == EnvironmentRow.id)
                           .where(EnvironmentRow.status == Status.DELETED))
    return [(env_id, snapshot_id) for env_id, snapshot_id in rows]
