"""Git sync: environments whose DAGs come from git follow their ref.

Each running environment with a git source is synced when its `sync_interval` has passed since
its last attempt, and at once when asked (`hangar env sync`, a push webhook: Context.git_wanted).
A sync switches the DAG folder atomically (hangar.runtime.gitsync), so Airflow sees the new commit
as it sees any file change, and never a half-written one. A failed sync keeps the last good commit
serving; its cause is recorded as an event of the environment once, when it first appears or
changes, and in the sync's state (hangar env get). When a sync is due, and which cause was last
recorded, are read from that state, so they survive a restart of the control plane. One
environment's failure never stops another's.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from hangar.context import Context
from hangar.domain import git_dags
from hangar.domain.status import Status
from hangar.errors import GitSyncFailed
from hangar.runtime import gitsync
from hangar.schemas.git import GitDags
from hangar.store import repository

log = logging.getLogger(__name__)
TICK_SECONDS = 1.0
_SYNCED = (Status.AVAILABLE, Status.UNAVAILABLE, Status.UPDATE_FAILED)


def _last_attempt(state: gitsync.SyncState) -> datetime | None:
    """When the environment was last synced or last failed to, from the sync's own state (so a
    restarted control plane neither fetches everything at once nor repeats an event)."""
    moments = [datetime.fromisoformat(at.replace("Z", "+00:00"))
               for at in (state.fetched_at, (state.last_error or {}).get("at")) if at]
    return max(moments, default=None)


class GitSyncer:
    def __init__(self, ctx: Context, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.ctx, self.now = ctx, now
        self.sources: dict[tuple[str, int], GitDags | None] = {}  # (env id, revision): revisions never change

    def _source(self, session, env) -> GitDags | None:
        key = (env.id, env.running_revision)
        if key not in self.sources:
            self.sources[key] = repository.get_spec(session, env.id, env.running_revision).git
        return self.sources[key]

    def due(self) -> list[tuple[str, str, GitDags]]:
        """(env id, name, source) of the environments to sync now."""
        wanted: set[str] = set()
        while self.ctx.git_wanted:  # set.pop is atomic: a request added meanwhile is kept for the next round
            wanted.add(self.ctx.git_wanted.pop())
        now, found = self.now(), []
        with self.ctx.store.session() as session:
            for env in repository.list_live(session):
                if env.status not in _SYNCED or not env.running_revision:
                    continue
                git = self._source(session, env)
                if git is None:
                    continue
                last = _last_attempt(gitsync.read_state(git_dags.git_root(self.ctx, env.id)))
                if env.id in wanted or last is None or (now - last).total_seconds() >= git.sync_interval:
                    found.append((env.id, env.name, git))
        return found

    def sync_one(self, env_id: str, name: str, git: GitDags) -> None:
        root = git_dags.git_root(self.ctx, env_id)
        failing = (gitsync.read_state(root).last_error or {}).get("message")
        try:
            accept = env_id in self.ctx.git_accept_rewritten
            self.ctx.git_accept_rewritten.discard(env_id)
            result = gitsync.sync(root=root, source=git_dags.source_for(self.ctx, git),
                                  timeout=self.ctx.settings.git_timeout, accept_rewritten_history=accept)
        except GitSyncFailed as exc:
            self._failed(env_id, name, exc, failing=failing)
            return
        if failing:
            self._event(env_id, f"git sync recovered: serving commit {result.commit[:12]} of {git.ref}")
        if result.changed:
            log.info("DAGs of %s now at commit %s of %s", name, result.commit[:12], git.ref,
                     extra={"env_id": env_id})

    def _failed(self, env_id: str, name: str, exc: GitSyncFailed, *, failing: str | None) -> None:
        state = gitsync.read_state(git_dags.git_root(self.ctx, env_id))
        cause = (state.last_error or {}).get("message", exc.message)  # as the sync recorded it, secrets scrubbed
        served = state.commit
        message = f"git sync failed, still serving {served[:12] if served else 'nothing'}: {cause}"
        log.warning("%s: %s", name, message, extra={"env_id": env_id})
        if failing != cause:  # a new cause: recorded once
            self._event(env_id, message)

    def _event(self, env_id: str, reason: str) -> None:
        with self.ctx.store.session() as session:
            env = repository.get_by_id(session, env_id)
            repository.add_event(session, env, previous=env.status, status=env.status, reason=reason)

    def run_once(self) -> None:
        for env_id, name, git in self.due():
            try:
                self.sync_one(env_id, name, git)
            except Exception:  # a handler's exception never kills the loop
                log.exception("syncing the git DAGs of %s failed", name)


def loop(ctx: Context, *, stop: threading.Event) -> None:
    """Sync what is due every TICK_SECONDS, or as soon as a sync is asked for, until `stop`."""
    syncer = GitSyncer(ctx)
    while not stop.is_set():
        syncer.run_once()
        ctx.git_wake.wait(TICK_SECONDS)
        ctx.git_wake.clear()
