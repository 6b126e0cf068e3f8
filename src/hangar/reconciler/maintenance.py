"""Maintenance windows at work: finding patched releases, and rebuilding runtimes in the window.

Three parts, on one daemon thread of the control plane (`loop`):
- `detect`, every Settings.maintenance_check_seconds (first after one period, not at
  start-up): for each AVAILABLE environment with requirements, uv resolves them again
  (hangar.runtime.preflight.package_diff); if a package the runtime has installed now
  resolves to another version, maintenance is recorded as pending with the changes as
  its reason. It never restarts anything itself.
- `tick`, every Settings.maintenance_window_check_seconds: environments that are `due`
  get an operation of kind MAINTENANCE, AVAILABLE -> MAINTENANCE in the same transaction,
  through the environment's queue like any update, so it never races one. Each check is
  recorded (Context.maintenance_checked), so a user can see that a window is watched.
- `maintain`, the operation's handler: the running revision is staged again on a new
  runtime epoch (a runtime built with uv --refresh), checked by pre-flight against the
  runtime in use, and switched to one component at a time, the scheduler draining.

Rules:
- Due means: maintenance pending, status AVAILABLE, now inside the environment's window,
  and no maintenance failed since this window opened (a failure waits for next week's
  window instead of restarting the environment again and again).
- A failure before the switch leaves everything as it ran: MAINTENANCE -> AVAILABLE with
  the error in the event's reason. A component that does not come up on the new runtime
  rolls back (MAINTENANCE -> ROLLING_BACK -> AVAILABLE, the error in last_update). Either
  way the environment's runtime epoch returns to the one in use, and the maintenance
  stays pending.
- The revision number does not change: the spec is the same, only its runtime is new.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from hangar.buckets import store as buckets
from hangar.context import Context
from hangar.domain.redaction import redact_failure
from hangar.domain import maintenance
from hangar.domain.lifecycle import change_status
from hangar.domain.maintenance import MAINTENANCE
from hangar.domain.status import Status
from hangar.errors import ComponentFailed
from hangar.reconciler.queue import Work
from hangar.runtime import preflight
from hangar.runtime.venvs import Runtime, builder_for, runtime_key
from hangar.store import repository
from hangar.store.models import EnvironmentRow, OperationRow, utcnow

if TYPE_CHECKING:
    from hangar.reconciler.handlers import Reconciler

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """An environment as the due rule sees it."""

    env_id: str
    status: str
    pending: bool
    window: str | None  # weekly_maintenance_window_start; None is the default window
    last_failure: datetime | None = None  # when the newest failed maintenance started


def due(candidates: Iterable[Candidate], *, now: datetime) -> list[str]:
    """The environments whose pending maintenance should start at `now`."""
    ready = []
    for c in candidates:
        if not c.pending or c.status != Status.AVAILABLE:
            continue
        opened = maintenance.window_opened(c.window, now)
        if opened is not None and (c.last_failure is None or c.last_failure < opened):
            ready.append(c.env_id)
    return ready


def tick(ctx: Context, *, now: datetime | None = None) -> list[str]:
    """Start the maintenance that is due; returns the environments it started on."""
    now = now or utcnow()
    with ctx.store.session() as session:
        candidates = [
            Candidate(env_id=env.id, status=env.status, pending=True, window=maintenance.window_of(session, env),
                      last_failure=_last_failure(session, env.id))
            for env in repository.list_live(session)
            if env.maintenance_pending is not None and env.running_revision is not None
        ]
    ctx.maintenance_checked = {c.env_id: now for c in candidates}
    started = []
    for env_id in due(candidates, now=now):
        try:
            if maintenance.start_maintenance(ctx, env_id=env_id, now=now) is not None:
                log.info("environment %s: maintenance started in its window", env_id)
                started.append(env_id)
        except Exception:  # one environment's trouble never holds up the others
            log.exception("starting maintenance of environment %s failed", env_id)
    return started


def detect(ctx: Context) -> list[str]:
    """Record pending maintenance where an installed package resolves to another version now;
    returns the environments it recorded it for."""
    settings = ctx.settings
    with ctx.store.session() as session:
        checks = []
        for env in repository.list_live(session):
            if env.status != Status.AVAILABLE or env.running_revision is None or env.maintenance_pending is not None:
                continue
            checks.append((env.id, repository.get_spec(session, env.id, env.running_revision), env.runtime_epoch))
    recorded = []
    for env_id, spec, epoch in checks:
        try:
            requirements = buckets.pinned_requirements(ctx, spec)
            if not requirements or not requirements.strip():
                continue
            key = runtime_key(python=settings.runtime_python, airflow_version=spec.airflow_version,
                              requirements=requirements, epoch=epoch, celery=spec.executor == "celery")
            running = Runtime(key=key, path=settings.runtimes_dir / key, airflow_version=spec.airflow_version)
            if not running.python.exists():
                continue
            diff = preflight.package_diff(old=running, airflow_version=spec.airflow_version, requirements=requirements,
                                          python=settings.runtime_python, celery=spec.executor == "celery",
                                          builder=builder_for(settings.isolated))
            if diff.changed:
                changes = ", ".join(f"{c.name} {c.old} -> {c.new}" for c in diff.changed)
                if maintenance.record_detected(ctx, env_id=env_id, reason=f"newer releases of installed packages: {changes}"):
                    log.info("environment %s: maintenance pending for %s", env_id, changes)
                    recorded.append(env_id)
        except Exception:  # a resolution that fails now is tried again at the next check
            log.exception("checking environment %s for newer package releases failed", env_id)
    return recorded


def loop(ctx: Context, *, stop: threading.Event, clock: Callable[[], datetime] = utcnow) -> None:
    """`tick` every Settings.maintenance_window_check_seconds and `detect` every
    Settings.maintenance_check_seconds, until `stop`."""
    checked = time.monotonic()
    while not stop.wait(ctx.settings.maintenance_window_check_seconds):
        try:
            tick(ctx, now=clock())
        except Exception:
            log.exception("maintenance: the check for due environments failed")
        if time.monotonic() - checked >= ctx.settings.maintenance_check_seconds:
            checked = time.monotonic()
            try:
                detect(ctx)
            except Exception:
                log.exception("maintenance: the check for newer package releases failed")


# --- the operation ---


def maintain(reconciler: Reconciler, work: Work, revision: int) -> None:
    """MAINTENANCE -> AVAILABLE: `revision` (the running one) again, on a runtime built anew."""
    ctx = reconciler.ctx
    assert work.operation_id is not None
    ctx.backend.watch(work.env_id, False)
    before = _epoch_before(ctx, work.operation_id)
    _set_epoch(ctx, env_id=work.env_id, epoch=before)  # an interrupted run starts again from the runtime in use
    old = reconciler._stage(work, revision)
    _set_epoch(ctx, env_id=work.env_id, epoch=before + 1)
    reconciler._step(work, f"rebuilding the runtime of revision {revision} for newer releases "
                           f"(runtime epoch {before + 1}, uv --refresh)")
    target = reconciler._stage(work, revision)
    reconciler._preflight(work, target, old)
    try:
        reconciler._wait_ready(work, reconciler._go_live(work, target))
    except ComponentFailed as exc:
        _set_epoch(ctx, env_id=work.env_id, epoch=before)
        _error_step(ctx, work, "maintenance failed: " + redact_failure(ctx, env_id=work.env_id, text=exc.message))
        reconciler._roll_back(work, old, exc)
        return
    _done(ctx, work, revision=revision, runtime=target.runtime.key)


def failed(session, env: EnvironmentRow, operation: OperationRow, *, code: str, message: str) -> None:
    """Reconciler.fail for a MAINTENANCE operation, in its transaction: the runtime in use stays in use."""
    before = operation.steps[0].get("epoch") if operation.steps else None
    if before is not None:
        env.runtime_epoch = before
    if env.status == Status.MAINTENANCE:  # nothing switched: the old runtime serves on
        change_status(session, env, Status.AVAILABLE,
                      reason=f"maintenance failed; revision {env.running_revision} keeps running on its runtime: {message}")
    elif env.status == Status.ROLLING_BACK:  # the way back failed too
        change_status(session, env, Status.UPDATE_FAILED, reason=message, error_code=code, error_message=message)


def handlers(reconciler: Reconciler) -> dict:
    """Reconciler.handle's entry for this operation kind."""
    return {MAINTENANCE: lambda work, revision: maintain(reconciler, work, revision)}


# --- helpers ---


def _last_failure(session, env_id: str) -> datetime | None:
    latest = maintenance.latest_maintenance(session, env_id)
    if latest is None or not latest.done or not any(step.get("error") for step in latest.steps):
        return None
    return maintenance.started_at(latest)


def _epoch_before(ctx: Context, operation_id: int) -> int:
    with ctx.store.session() as session:
        return int(session.get_one(OperationRow, operation_id).steps[0]["epoch"])


def _set_epoch(ctx: Context, *, env_id: str, epoch: int) -> None:
    with ctx.store.session() as session:
        repository.get_by_id(session, env_id).runtime_epoch = epoch


def _error_step(ctx: Context, work: Work, text: str) -> None:
    with ctx.store.session() as session:
        operation = session.get_one(OperationRow, work.operation_id)
        operation.steps = [*operation.steps, {"step": text, "at": utcnow().isoformat(), "error": text}]


def _done(ctx: Context, work: Work, *, revision: int, runtime: str) -> None:
    with ctx.store.session() as session:
        env = repository.get_by_id(session, work.env_id)
        operation = session.get_one(OperationRow, work.operation_id)
        operation.done = True
        operation.steps = [*operation.steps, {"step": "done", "at": utcnow().isoformat()}]
        # a request made while this ran, with another reason, waits for the next window
        if env.maintenance_pending == operation.steps[0].get("reason"):
            env.maintenance_pending = env.maintenance_requested_at = None
        change_status(session, env, Status.AVAILABLE,
                      reason=f"maintenance done: revision {revision} runs on the rebuilt runtime {runtime}")
    ctx.backend.watch(work.env_id)
