"""Maintenance windows at work: finding patched releases, and starting the rebuild in the window.

Two parts, on one daemon thread of the control plane (`loop`); the rebuild itself is the
operation hangar.reconciler.operations.maintenance:
- `detect`, every Settings.maintenance_check_seconds (first after one period, not at
  start-up): for each AVAILABLE environment with requirements, uv resolves them again
  (hangar.runtime.preflight.package_diff); if a package the runtime has installed now
  resolves to another version, maintenance is recorded as pending with the changes as
  its reason. It never restarts anything itself.
- `tick`, every Settings.maintenance_window_check_seconds: environments that are `due`
  get an operation of kind OperationKind.MAINTENANCE, AVAILABLE -> MAINTENANCE in the same transaction,
  through the environment's queue like any update, so it never races one. Each check is
  recorded (Context.maintenance_checked), so a user can see that a window is watched.

Rules:
- Due means: maintenance pending, status AVAILABLE, now inside the environment's window,
  and no maintenance failed since this window opened (a failure waits for next week's
  window instead of restarting the environment again and again).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from hangar.buckets import store as buckets
from hangar.context import Context
from hangar.domain import maintenance
from hangar.domain.status import Status
from hangar.runtime import preflight
from hangar.runtime.venvs import Runtime, builder_for, runtime_key
from hangar.store import repository
from hangar.store.models import utcnow

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


def _last_failure(session, env_id: str) -> datetime | None:
    latest = maintenance.latest_maintenance(session, env_id)
    if latest is None or not latest.done or not any(step.error for step in repository.steps_of(latest)):
        return None
    return maintenance.started_at(latest)
