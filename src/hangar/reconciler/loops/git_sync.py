"""Git sync: environments whose DAGs come from git follow their ref.

Each running environment with a git source is synced when its `sync_interval` has passed since
its last attempt, and at once when asked (`hangar env sync`, a push webhook: Context.git_wanted).
A sync switches the DAG folder atomically (hangar.runtime.gitsync), so Airflow sees the new commit
as it sees any file change, and never a half-written one. A failed sync keeps the last good commit
serving; its cause is recorded as an event of the environment once, when it first appears or
changes, and in the sync's state (hangar env get). One environment's failure never stops another's.
"""
from __future__ import annotations

import logging
import threading
import time

from hangar.context import Context
from hangar.domain import git_dags
from hangar.domain.status import Status
from hangar.errors import GitSyncFailed
from hangar.runtime import gitsync
from hangar.store import repository

log = logging.getLogger(__name__)
TICK_SECONDS = 1.0
_SYNCED = (Status.AVAILABLE, Status.UNAVAILABLE, Status.UPDATE_FAILED)


class GitSyncer:
    def __init__(self, ctx: Context, *, clock=time.monotonic) -> None:
        self.ctx, self.clock = ctx, clock
        self.last_attempt: dict[str, float] = {}
        self.last_error: dict[str, str | None] = {}

    def due(self) -> list[tuple[str, str]]:
        """(env id, name) of the environments to sync now."""
        wanted: set[str] = set()
        while self.ctx.git_wanted:  # set.pop is atomic: a request added meanwhile is kept for the next round
            wanted.add(self.ctx.git_wanted.pop())
        now, found = self.clock(), []
        with self.ctx.store.session() as session:
            for env in repository.list_live(session):
                if env.status not in _SYNCED or not env.running_revision:
                    continue
                spec = repository.get_spec(session, env.id, env.running_revision)
                if spec.git is None:
                    continue
                last = self.last_attempt.get(env.id)
                if env.id in wanted or last is None or now - last >= spec.git.sync_interval:
                    found.append((env.id, env.name))
        return found

    def sync_one(self, env_id: str, name: str) -> None:
        self.last_attempt[env_id] = self.clock()
        with self.ctx.store.session() as session:
            env = repository.get_by_id(session, env_id)
            git = repository.get_spec(session, env_id, env.running_revision).git
        if git is None:
            return
        try:
            result = gitsync.sync(root=git_dags.git_root(self.ctx, env_id), source=git_dags.source_for(self.ctx, git),
                                  timeout=self.ctx.settings.git_timeout)
        except GitSyncFailed as exc:
            self._failed(env_id, name, exc)
            return
        if self.last_error.get(env_id):
            self._event(env_id, f"git sync recovered: serving commit {result.commit[:12]} of {git.ref}")
        self.last_error[env_id] = None
        if result.changed:
            log.info("DAGs of %s now at commit %s of %s", name, result.commit[:12], git.ref,
                     extra={"env_id": env_id})

    def _failed(self, env_id: str, name: str, exc: GitSyncFailed) -> None:
        served = gitsync.read_state(git_dags.git_root(self.ctx, env_id)).commit
        message = f"git sync failed, still serving {served[:12] if served else 'nothing'}: {exc.message}"
        log.warning("%s: %s", name, message, extra={"env_id": env_id})
        if self.last_error.get(env_id) != exc.message:
            self._event(env_id, message)
        self.last_error[env_id] = exc.message

    def _event(self, env_id: str, reason: str) -> None:
        with self.ctx.store.session() as session:
            env = repository.get_by_id(session, env_id)
            repository.add_event(session, env, previous=env.status, status=env.status, reason=reason)

    def run_once(self) -> None:
        for env_id, name in self.due():
            try:
                self.sync_one(env_id, name)
            except Exception:  # a handler's exception never kills the loop
                log.exception("syncing the git DAGs of %s failed", name)


def loop(ctx: Context, *, stop: threading.Event) -> None:
    """Sync what is due every TICK_SECONDS, or as soon as a sync is asked for, until `stop`."""
    syncer = GitSyncer(ctx)
    while not stop.is_set():
        syncer.run_once()
        ctx.git_wake.wait(TICK_SECONDS)
        ctx.git_wake.clear()
