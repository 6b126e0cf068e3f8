"""Maintenance: restarts Hangar starts itself wait for the environment's weekly window.

MWAA's weekly_maintenance_window_start is "DAY:HH:MM" in UTC (MM is 00 or 30,
checked in hangar.schemas.spec). A window lasts WINDOW (2 hours) from its start and
may run past the end of the week: SUN:23:30 ends on Monday at 01:30. An environment
that sets no window gets DEFAULT_WINDOW, Sunday 03:00 UTC, a quiet hour for most teams.

The restart Hangar asks for here is a rebuild of the environment's runtime, so a
patched release of an installed package is picked up (a new runtime epoch, see
hangar.runtime.venvs). Asking only records it (maintenance_pending, with the reason
and when it was asked); hangar.reconciler.loops.maintenance starts the rebuild in the next
window, as an operation of kind MAINTENANCE while the environment is AVAILABLE:
AVAILABLE -> MAINTENANCE -> AVAILABLE. The revision that runs keeps its number.

The window functions are pure, with the clock as a parameter, so they are tested
without waiting for a week.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from hangar.schemas.operations import OperationKind, StepRecord
from hangar.context import Context
from hangar.domain.lifecycle import change_status
from hangar.domain.status import Status
from hangar.errors import EnvironmentBusy
from hangar.store import repository
from hangar.store.models import EnvironmentRow, OperationRow, utcnow

WINDOW = timedelta(hours=2)
DEFAULT_WINDOW = "SUN:03:00"
DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")  # datetime.weekday() order
_WEEK = timedelta(days=7)
# statuses in which the environment has a runtime worth rebuilding
_REQUESTABLE = frozenset({Status.AVAILABLE, Status.UNAVAILABLE, Status.UPDATING, Status.UPDATE_FAILED,
                          Status.ROLLING_BACK, Status.CREATING_SNAPSHOT, Status.MAINTENANCE})


class MaintenanceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="a rebuild of the runtime was requested", min_length=1, max_length=2000)


class LastMaintenance(BaseModel):
    started_at: datetime
    outcome: str  # RUNNING, SUCCESS or FAILED
    error: str | None = None


class MaintenancePublic(BaseModel):
    environment: str
    status: str
    pending: bool
    reason: str | None
    requested_at: datetime | None
    window_start: str  # the environment's weekly_maintenance_window_start, or DEFAULT_WINDOW
    default_window: bool
    in_window: bool
    next_window: datetime  # the window under way, else the next to open
    next_window_ends: datetime
    runtime_epoch: int
    last_maintenance: LastMaintenance | None
    # when the control plane last checked the pending maintenance against the window (None: not
    # since it started, or nothing is pending)
    last_checked_at: datetime | None = None


# --- the window, pure ---


def window_contains(start: str | None, now: datetime) -> bool:
    """Whether `now` falls in the weekly window opening at `start` (None: DEFAULT_WINDOW)."""
    return window_opened(start, now) is not None


def window_opened(start: str | None, now: datetime) -> datetime | None:
    """When the window that contains `now` opened, or None outside the window."""
    now = _utc(now)
    this_week = _monday(now) + _offset(start)
    # last week's window is the one still open early on Monday after a late-Sunday start
    for opened in (this_week, this_week - _WEEK):
        if opened <= now < opened + WINDOW:
            return opened
    return None


def next_window(start: str | None, now: datetime) -> datetime:
    """The start of the window under way at `now`, or else of the next one to open."""
    now = _utc(now)
    opened = window_opened(start, now)
    if opened is not None:
        return opened
    candidate = _monday(now) + _offset(start)
    return candidate if candidate > now else candidate + _WEEK


def _offset(start: str | None) -> timedelta:
    day, hour, minute = (start or DEFAULT_WINDOW).split(":")
    return timedelta(days=DAYS.index(day), hours=int(hour), minutes=int(minute))


def _monday(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=now.weekday())


def _utc(now: datetime) -> datetime:
    return now.replace(tzinfo=timezone.utc) if now.tzinfo is None else now.astimezone(timezone.utc)


# --- use cases ---


def request_maintenance(ctx: Context, *, name: str, reason: str, now: datetime | None = None) -> MaintenancePublic:
    """Record that the runtime should be rebuilt in the next window; nothing restarts now.

    A request while one is pending replaces its reason and keeps when it was first asked."""
    now = now or utcnow()
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        if Status(env.status) not in _REQUESTABLE or env.running_revision is None:
            raise EnvironmentBusy(name, env.status)
        _set_pending(env, reason=reason, now=now)
    return maintenance_status(ctx, name=name, now=now)


def maintenance_status(ctx: Context, *, name: str, now: datetime | None = None) -> MaintenancePublic:
    now = now or utcnow()
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        start = window_of(session, env)
        opens = next_window(start, now)
        latest = latest_maintenance(session, env.id)
        return MaintenancePublic(
            environment=env.name, status=env.status, pending=env.maintenance_pending is not None,
            reason=env.maintenance_pending, requested_at=env.maintenance_requested_at,
            window_start=start or DEFAULT_WINDOW, default_window=start is None, in_window=window_contains(start, now),
            next_window=opens, next_window_ends=opens + WINDOW, runtime_epoch=env.runtime_epoch,
            last_maintenance=_last(latest) if latest is not None else None,
            last_checked_at=ctx.maintenance_checked.get(env.id),
        )


# --- for the maintenance loop (hangar.reconciler.loops.maintenance) ---


def record_detected(ctx: Context, *, env_id: str, reason: str, now: datetime | None = None) -> bool:
    """Hangar's own finding (a patched release): pending maintenance unless some is pending already."""
    with ctx.store.session() as session:
        env = repository.get_by_id(session, env_id)
        if env.maintenance_pending is not None or env.status == Status.DELETED:
            return False
        _set_pending(env, reason=reason, now=now or utcnow())
        return True


def start_maintenance(ctx: Context, *, env_id: str, now: datetime | None = None) -> int | None:
    """Open the MAINTENANCE operation for the pending rebuild and hand it to the reconciler.

    None when the environment is no longer AVAILABLE with maintenance pending (an update
    came first). The runtime epoch in use is kept on the first step, so the operation
    rebuilds from it again after a crash, and a failure goes back to it."""
    now = now or utcnow()
    with ctx.store.session() as session:
        env = repository.get_by_id(session, env_id)
        if env.status != Status.AVAILABLE or env.maintenance_pending is None or env.running_revision is None:
            return None
        start = window_of(session, env) or DEFAULT_WINDOW
        change_status(session, env, Status.MAINTENANCE,
                      reason=f"maintenance window {start} UTC: rebuilding the runtime ({env.maintenance_pending})")
        operation = repository.open_operation(
            session, env_id=env.id, kind=OperationKind.MAINTENANCE, revision=env.running_revision,
            first=StepRecord(step=f"maintenance started in the window from {start} UTC", at=now.isoformat(),
                             epoch=env.runtime_epoch, reason=env.maintenance_pending))
        operation_id = operation.id
    ctx.submit(env_id, operation_id)
    return operation_id


def window_of(session, env: EnvironmentRow) -> str | None:
    """The window the environment runs with: its running revision's, else its newest revision's."""
    return repository.get_spec(session, env.id, env.running_revision or env.revision).weekly_maintenance_window_start


def latest_maintenance(session, env_id: str) -> OperationRow | None:
    return session.scalar(select(OperationRow).where(OperationRow.environment_id == env_id,
                                                     OperationRow.kind == OperationKind.MAINTENANCE)
                          .order_by(OperationRow.id.desc()).limit(1))


def started_at(operation: OperationRow) -> datetime:
    """When the window's clock started the operation (the first step's time)."""
    steps = repository.steps_of(operation)
    return steps[0].started if steps else operation.started_at


def _set_pending(env: EnvironmentRow, *, reason: str, now: datetime) -> None:
    env.maintenance_pending = reason
    if env.maintenance_requested_at is None:
        env.maintenance_requested_at = now


def _last(operation: OperationRow) -> LastMaintenance:
    error = next((step.error for step in reversed(repository.steps_of(operation)) if step.error), None)
    outcome = "RUNNING" if not operation.done else ("FAILED" if error else "SUCCESS")
    return LastMaintenance(started_at=started_at(operation), outcome=outcome, error=error)
