"""Worker autoscaling for Celery environments.

Every `autoscale_interval` seconds (2 by default) the autoscaler reads each Celery
environment's queued and running task instances from its metadata database (the query
the official Helm chart gives KEDA) and wants

    desired = clamp(ceil((queued + running) / worker_concurrency), min_workers, max_workers)

It scales up at once. It scales down only once the demand has stayed below the running
workers for `autoscale_cooldown` seconds, and then by Celery's warm shutdown (the worker
stops consuming, finishes its tasks, exits), choosing the least busy workers: no task is
killed, none is given to a worker that is leaving. Every reading is kept as a time series
(WorkerSampleRow). One environment's failure never stops the others' scaling.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from hangar.context import Context
from hangar.schemas.spec import Executor
from hangar.domain.status import Status
from hangar.domain.metadata_access import metadata_url
from hangar.runtime import metadb
from hangar.store import repository, worker_samples
from hangar.store.models import utcnow

log = logging.getLogger(__name__)

SCALING_STATUSES = (Status.AVAILABLE, Status.UNAVAILABLE)
PRUNE_EVERY = 600.0


def desired_workers(*, queued: int, running: int, concurrency: int, minimum: int, maximum: int) -> int:
    wanted = math.ceil((queued + running) / max(1, concurrency))
    return max(minimum, min(maximum, wanted))


@dataclass(kw_only=True)
class Cooldown:
    """Up at once; down only after the demand has stayed below the running workers for `seconds`,
    and then only to the most workers wanted during that time (a scheduler loop that queued
    nothing for a moment is not a reason to retire a worker the next loop needs)."""

    seconds: float
    clock: Callable[[], float] = time.monotonic
    _low_since: float | None = None
    _peak: int = 0

    def target(self, *, current: int, desired: int) -> int:
        if desired >= current:
            self._low_since = None
            return desired
        now = self.clock()
        if self._low_since is None:
            self._low_since, self._peak = now, desired
        self._peak = max(self._peak, desired)
        if now - self._low_since >= self.seconds:
            self._low_since = None
            return self._peak
        return current


@dataclass(kw_only=True)
class _Watched:
    url: str
    cooldown: Cooldown
    connection: object | None = None


@dataclass(kw_only=True)
class Autoscaler:
    ctx: Context
    clock: Callable[[], float] = time.monotonic
    _envs: dict[str, _Watched] = field(default_factory=dict)
    _pruned_at: float = 0.0

    def tick(self) -> None:
        with self.ctx.store.session() as session:
            rows = []
            for env in repository.list_live(session):
                if Status(env.status) not in SCALING_STATUSES or env.running_revision is None:
                    continue
                spec = repository.get_spec(session, env.id, env.running_revision)
                if spec.executor == Executor.celery:
                    rows.append((env.id, env.database_name, spec))
        seen = set()
        for env_id, database, spec in rows:
            seen.add(env_id)
            try:
                self._scale(env_id, database, spec)
            except Exception:
                log.exception("autoscaling environment %s failed", env_id)
                self._forget(env_id)
        for env_id in set(self._envs) - seen:
            self._forget(env_id)
        if self.clock() - self._pruned_at > PRUNE_EVERY:
            self._pruned_at = self.clock()
            with self.ctx.store.session() as session:
                worker_samples.prune(session, before=utcnow() - timedelta(hours=self.ctx.settings.worker_samples_hours))

    def _scale(self, env_id: str, database: str | None, spec) -> None:
        processes = self.ctx.backend.get(env_id)
        if processes is None or processes.plan.workers is None:
            return
        watched = self._envs.get(env_id)
        if watched is None:
            watched = self._envs[env_id] = _Watched(url=metadata_url(self.ctx, env_id, database),
                                                    cooldown=Cooldown(seconds=self.ctx.settings.autoscale_cooldown,
                                                                      clock=self.clock))
        if watched.connection is None:
            watched.connection = metadb.connect(watched.url)
        queued, running = metadb.task_demand(watched.connection)
        plan = processes.plan.workers
        desired = desired_workers(queued=queued, running=running, concurrency=plan.concurrency,
                                  minimum=plan.min_workers, maximum=plan.max_workers)
        current = len(processes.workers())
        target = watched.cooldown.target(current=current, desired=desired)
        if target != current:
            changed = processes.scale_workers(target)
            verb = "started" if target > current else "warm shutdown of"
            log.info("environment %s: %d queued + %d running tasks want %d workers; %s %s",
                     env_id, queued, running, desired, verb, ", ".join(changed))
        with self.ctx.store.session() as session:
            worker_samples.add(session, env_id=env_id, at=utcnow(), current=len(processes.workers()), desired=desired,
                               queued=queued, running=running)

    def _forget(self, env_id: str) -> None:
        watched = self._envs.pop(env_id, None)
        if watched is not None and watched.connection is not None:
            metadb.close_quietly(watched.connection)


def loop(ctx: Context, *, stop: threading.Event) -> None:
    scaler = Autoscaler(ctx=ctx)
    while not stop.wait(ctx.settings.autoscale_interval):
        try:
            scaler.tick()
        except Exception:
            log.exception("autoscaler: the check failed")
