"""Hosts that join a Celery environment's workers, and the tokens they join with.

A worker token belongs to one environment and lets a host do exactly two things for it:
send heartbeats, and fetch what its workers need to run (hangar.api.routes.workers says
which routes take it). Only Celery environments take tokens: a LocalExecutor environment
runs its tasks inside its scheduler, so a joined host would have nothing to do.

Invariants:
- a token is `hwt_` + 43 URL-safe characters, shown once when issued; the store keeps
  only its sha256, and neither the token nor its hash appears in an answer, log or audit entry;
- a token is valid only for the environment it was issued for; a revoked token, or one of an
  environment that was deleted, is refused as revoked (403), so the host stops taking tasks;
  anything else that is not a live token is refused as invalid (401);
- a host is one row per (environment, hostname), written by its heartbeats; its status is
  computed when read, from its last heartbeat and its token, never stored:
  REVOKED (its token was revoked) before STOPPED (it said so) before LOST (no heartbeat for
  `worker_lost_seconds`) before ACTIVE.

The clock is a parameter (`now`), so tests move it instead of sleeping.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NewType

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hangar.context import Context
from hangar.domain.status import Status
from hangar.errors import AccessDenied, EnvironmentNotFound, Unauthorized, ValidationFailed
from hangar.schemas.workers import (
    Heartbeat, HeartbeatAccepted, HostState, HostStatus, WorkerHostPublic, WorkerTokenCreated, WorkerTokenPublic,
)
from hangar.store import repository
from hangar.store.models import EnvironmentRow, RevisionRow, WorkerHostRow, WorkerTokenRow, utcnow

WorkerTokenId = NewType("WorkerTokenId", str)

TOKEN_PREFIX = "hwt_"
CELERY = "celery"


# --- errors ---


class WorkerTokenInvalid(Unauthorized):
    code = "WORKER_TOKEN_INVALID"

    def __init__(self, name: str) -> None:
        super().__init__(f"a valid worker token for environment {name!r} is required "
                         "(Authorization: Bearer hwt_..., from `hangar worker token create`)")
        self.name = name


class WorkerTokenRevoked(AccessDenied):
    code = "WORKER_TOKEN_REVOKED"

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"the worker token for environment {name!r} {why}; stop taking tasks and join again "
                         "with a new token")
        self.name = name


class WorkerTokenNotFound(ValidationFailed):
    code = "WORKER_TOKEN_NOT_FOUND"

    def __init__(self, name: str, token_id: str) -> None:
        super().__init__(f"environment {name!r} has no worker token {token_id!r}; "
                         f"`hangar worker token list {name}` shows its tokens")


class ExecutorNotCelery(ValidationFailed):
    code = "EXECUTOR_NOT_CELERY"

    def __init__(self, name: str, executor: str) -> None:
        super().__init__(f"environment {name!r} uses the {executor} executor, which runs tasks inside its scheduler; "
                         f"only a celery environment takes workers from other hosts "
                         f"(`hangar env update {name} --executor celery`)")
        self.name, self.executor = name, executor


@dataclass(frozen=True, kw_only=True)
class VerifiedWorkerToken:
    """A live worker token and the environment it was checked against."""

    token_id: WorkerTokenId
    environment_id: str
    environment: str


# --- tokens ---


def issue_token(ctx: Context, *, name: str, label: str | None = None, now: datetime | None = None) -> WorkerTokenCreated:
    now = now or utcnow()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        executor = executor_of(session, env)
        if executor != CELERY:
            raise ExecutorNotCelery(name, executor)
        row = WorkerTokenRow(id=_new_token_id(), environment_id=env.id, label=label, token_sha256=_digest(token),
                             created_at=now)
        session.add(row)
    return WorkerTokenCreated(id=row.id, token=token, label=label, created_at=now)


def list_tokens(ctx: Context, *, name: str) -> list[WorkerTokenPublic]:
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        rows = session.scalars(select(WorkerTokenRow).where(WorkerTokenRow.environment_id == env.id)
                               .order_by(WorkerTokenRow.created_at, WorkerTokenRow.id))
        counts = dict(session.execute(select(WorkerHostRow.token_id, func.count()).where(
            WorkerHostRow.environment_id == env.id).group_by(WorkerHostRow.token_id)).all())
        return [_token_public(row, hosts=counts.get(row.id, 0)) for row in rows]


def revoke_token(ctx: Context, *, name: str, token_id: str, now: datetime | None = None) -> WorkerTokenPublic:
    """Refuse the token from now on; revoking twice keeps the first time."""
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        row = session.get(WorkerTokenRow, token_id)
        if row is None or row.environment_id != env.id:
            raise WorkerTokenNotFound(name, token_id)
        row.revoked_at = row.revoked_at or now or utcnow()
        hosts = session.scalar(select(func.count()).where(WorkerHostRow.token_id == row.id)) or 0
        return _token_public(row, hosts=hosts)


def verify_token(ctx: Context, *, name: str, token: str, now: datetime | None = None) -> VerifiedWorkerToken:
    """The token's identity if it is live and was issued for environment `name`.

    Raises WorkerTokenInvalid (unknown, malformed, or another environment's) or
    WorkerTokenRevoked (revoked, or its environment was deleted)."""
    digest = _digest(token)
    with ctx.store.session() as session:
        row = session.scalar(select(WorkerTokenRow).where(WorkerTokenRow.token_sha256 == digest)) \
            if token.startswith(TOKEN_PREFIX) else None
        # the lookup is by hash, which a caller cannot steer byte by byte; compare in constant time all the same
        if row is None or not hmac.compare_digest(row.token_sha256.encode(), digest.encode()):
            raise WorkerTokenInvalid(name)
        env = repository.find_live(session, name)
        if env is None or env.id != row.environment_id:
            owner = session.get(EnvironmentRow, row.environment_id)
            if owner is not None and owner.name == name and owner.status == Status.DELETED:
                raise WorkerTokenRevoked(name, "belongs to a deleted environment of that name")
            raise WorkerTokenInvalid(name)
        if row.revoked_at is not None:
            raise WorkerTokenRevoked(name, f"{row.id} was revoked")
        row.last_used_at = now or utcnow()
        return VerifiedWorkerToken(token_id=WorkerTokenId(row.id), environment_id=env.id, environment=env.name)


# --- hosts ---


def record_heartbeat(ctx: Context, *, caller: VerifiedWorkerToken, report: Heartbeat, address: str,
                     now: datetime | None = None) -> HeartbeatAccepted:
    """Insert or update the host's row with what it reported."""
    now = now or utcnow()
    lost_after = ctx.settings.worker_lost_seconds
    with ctx.store.session() as session:
        token = session.get_one(WorkerTokenRow, caller.token_id)
        if token.revoked_at is not None:  # revoked since the caller was verified
            raise WorkerTokenRevoked(caller.environment, f"{token.id} was revoked")
        host = session.scalar(select(WorkerHostRow).where(WorkerHostRow.environment_id == caller.environment_id,
                                                          WorkerHostRow.hostname == report.hostname))
        if host is None:
            host = WorkerHostRow(environment_id=caller.environment_id, hostname=report.hostname, joined_at=now)
            session.add(host)
        elif (host.state == HostState.STOPPED or host.token_id != token.id
              or _age(host.last_heartbeat_at, now) >= lost_after):
            host.joined_at = now  # back after stopping, being lost, or with another token: a new join
        host.token_id = token.id
        host.address = address[:64]
        host.last_heartbeat_at = now
        host.state = report.state.value
        host.concurrency = report.concurrency
        host.running_tasks = report.running_tasks
        host.workers = list(report.workers)
        host.airflow_version = report.airflow_version
        host.runtime_key = report.runtime_key
    return HeartbeatAccepted(lost_after_seconds=lost_after)


def list_hosts(ctx: Context, *, name: str, now: datetime | None = None) -> list[WorkerHostPublic]:
    now = now or utcnow()
    lost_after = ctx.settings.worker_lost_seconds
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        rows = session.execute(
            select(WorkerHostRow, WorkerTokenRow.revoked_at).join(WorkerTokenRow, WorkerHostRow.token_id == WorkerTokenRow.id)
            .where(WorkerHostRow.environment_id == env.id).order_by(WorkerHostRow.hostname)
        ).all()
        return [_host_public(host, revoked_at=revoked_at, now=now, lost_after=lost_after) for host, revoked_at in rows]


def host_status(*, state: str, last_heartbeat_at: datetime, token_revoked: bool, now: datetime,
                lost_after: float) -> HostStatus:
    if token_revoked:
        return HostStatus.REVOKED
    if state == HostState.STOPPED:
        return HostStatus.STOPPED
    if _age(last_heartbeat_at, now) >= lost_after:
        return HostStatus.LOST
    return HostStatus.ACTIVE


def executor_of(session: Session, env: EnvironmentRow) -> str:
    """The executor of the revision asked for last. Read from the stored spec: revisions
    from before Spec had an executor have none and ran LocalExecutor."""
    row = session.get(RevisionRow, (env.id, env.revision))
    if row is None:
        raise EnvironmentNotFound(env.name)
    return str((row.spec or {}).get("executor") or "local")


# --- helpers ---


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token_id() -> str:
    return "wt_" + secrets.token_hex(6)


def _age(then: datetime, now: datetime) -> float:
    return max(0.0, (now - then) / timedelta(seconds=1))


def _token_public(row: WorkerTokenRow, *, hosts: int) -> WorkerTokenPublic:
    return WorkerTokenPublic(id=row.id, label=row.label, created_at=row.created_at, last_used_at=row.last_used_at,
                             revoked_at=row.revoked_at, revoked=row.revoked_at is not None, hosts=hosts)


def _host_public(host: WorkerHostRow, *, revoked_at: datetime | None, now: datetime, lost_after: float) -> WorkerHostPublic:
    return WorkerHostPublic(
        hostname=host.hostname, address=host.address,
        status=host_status(state=host.state, last_heartbeat_at=host.last_heartbeat_at, token_revoked=revoked_at is not None,
                           now=now, lost_after=lost_after),
        state=HostState(host.state), heartbeat_age_seconds=round(_age(host.last_heartbeat_at, now), 1),
        last_heartbeat_at=host.last_heartbeat_at, joined_at=host.joined_at, concurrency=host.concurrency,
        running_tasks=host.running_tasks, workers=list(host.workers or []), airflow_version=host.airflow_version,
        runtime_key=host.runtime_key, token_id=host.token_id,
    )
