"""What the API reads about environments: one or all of them, their events, their history
of revisions with how each was applied, and the autoscaler's readings. Nothing here writes."""
from __future__ import annotations

from datetime import timedelta

from hangar.backend.components import is_worker, web_component
from hangar.context import Context
from hangar.domain import git_dags
from hangar.domain.changes import describe_changes
from hangar.runtime.airflow_config import base_url
from hangar.schemas.operations import OperationKind, Outcome
from hangar.schemas.public import (
    ComponentPublic, EnvironmentPublic, ErrorInfo, EventPublic, LastUpdate, OperationProgressPublic, RevisionPublic,
    WorkerSamplePublic, WorkersPublic,
)
from hangar.schemas.spec import Executor, Spec
from hangar.schemas.versions import parse_version
from hangar.store import repository, worker_samples
from hangar.store.models import EnvironmentRow, utcnow


def list_history(ctx: Context, *, name: str) -> list[RevisionPublic]:
    """Every revision with what it changed, when, and how applying it ended."""
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        outcomes: dict[int, tuple[str, str | None]] = {}
        for operation in repository.list_operations(session, env.id):
            if operation.kind not in (OperationKind.CREATE, OperationKind.UPDATE):
                continue
            last = repository.steps_of(operation)[-1:]
            outcome = last[0].outcome if last else None
            if not operation.done:
                outcomes[operation.revision] = ("IN_PROGRESS", None)
            elif outcome == Outcome.FAILED:
                outcomes[operation.revision] = ("FAILED", last[0].error)
            elif outcome == Outcome.ROLLED_BACK:
                outcomes[operation.revision] = ("ROLLED_BACK", None)
            else:
                outcomes[operation.revision] = ("APPLIED", None)
        history, previous = [], None
        for row in repository.list_revisions(session, env.id):
            spec = Spec.model_validate(row.spec)
            status, error = outcomes.get(row.number, ("RECORDED", None))
            if row.number == env.last_update_revision and env.last_update_status == "FAILED" and status != "IN_PROGRESS":
                error = error or env.last_update_error_message
                status = "ROLLED_BACK" if status == "ROLLED_BACK" else "FAILED"
            history.append(RevisionPublic(
                revision=row.number, created_at=row.created_at, status=status, error=error,
                running=row.number == env.running_revision, last_good=row.number == env.last_good_revision,
                changes=describe_changes(previous, spec),
            ))
            previous = spec
        return history


def get_environment(ctx: Context, *, name: str) -> EnvironmentPublic:
    with ctx.store.session() as session:
        return environment_public(ctx, session, repository.get_live(session, name))


def list_environments(ctx: Context) -> list[EnvironmentPublic]:
    with ctx.store.session() as session:
        return [environment_public(ctx, session, env) for env in repository.list_live(session)]


def list_events(ctx: Context, *, name: str, newest: int | None = None) -> list[EventPublic]:
    """Oldest first; only the `newest` ones when given."""
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        return [
            EventPublic(at=e.at, status=e.status, previous=e.previous, reason=e.reason)
            for e in repository.list_events(session, env.id, newest=newest)
        ]


def operation_progress(ctx: Context, *, name: str) -> OperationProgressPublic | None:
    """What the environment's newest operation has done so far (None before its first)."""
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        row = repository.latest_operation(session, env.id)
        if row is None:
            return None
        return OperationProgressPublic(kind=row.kind, revision=row.revision, done=row.done, started_at=row.started_at,
                                       steps=[record.step for record in repository.steps_of(row)])


def environment_public(ctx: Context, session, env: EnvironmentRow) -> EnvironmentPublic:
    desired = repository.get_spec(session, env.id, env.revision)
    running = env.running_revision or env.revision
    spec = desired if running == env.revision else repository.get_spec(session, env.id, running)
    last_update = None
    if env.last_update_status:
        error = None
        if env.last_update_error_code:
            error = ErrorInfo(code=env.last_update_error_code, message=env.last_update_error_message or "")
        last_update = LastUpdate(
            status=env.last_update_status, created_at=env.last_update_at or env.created_at, error=error,
            revision=env.last_update_revision or env.revision,
        )
    components = []
    processes = ctx.backend.get(env.id)
    if processes is not None:
        web = web_component(parse_version(spec.airflow_version)[0])
        for row in processes.health().components:
            components.append(ComponentPublic(**row, port=env.ports.get("web") if row["name"] == web else None))
    ready = sum(1 for c in components if is_worker(c.name) and c.state == "RUNNING")
    return EnvironmentPublic(
        name=env.name, status=env.status, status_reason=env.status_reason, airflow_version=spec.airflow_version,
        webserver_url=base_url(env.ports) if env.ports else None, created_at=env.created_at, last_update=last_update,
        revision=env.revision, running_revision=env.running_revision, last_good_revision=env.last_good_revision,
        spec=desired, components=components, executor=spec.executor.value,
        workers=_workers(session, env, spec, ready=ready),
        git=git_dags.status_of(ctx, env.id) if (spec.git or desired.git) is not None else None,
    )


def _workers(session, env: EnvironmentRow, spec: Spec, *, ready: int) -> WorkersPublic | None:
    """The autoscaler's last reading (hangar.reconciler.loops.autoscaler) with the running revision's bounds,
    and how many workers Celery reports ready."""
    if spec.executor != Executor.celery:
        return None
    sample = worker_samples.latest(session, env.id)
    assert spec.max_workers is not None and spec.worker_concurrency is not None
    if sample is None:
        return WorkersPublic(current=0, desired=spec.min_workers, min=spec.min_workers, max=spec.max_workers,
                             queued_tasks=0, running_tasks=0, concurrency=spec.worker_concurrency, ready=ready)
    return WorkersPublic(current=sample.current, desired=sample.desired, min=spec.min_workers, max=spec.max_workers,
                         queued_tasks=sample.queued, running_tasks=sample.running, concurrency=spec.worker_concurrency,
                         at=sample.at, ready=ready)


def worker_history(ctx: Context, *, name: str, minutes: float = 60) -> list[WorkerSamplePublic]:
    """The autoscaler's readings of the last `minutes`, oldest first."""
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        start = utcnow() - timedelta(minutes=minutes)
        return [WorkerSamplePublic(at=s.at, current=s.current, desired=s.desired, queued_tasks=s.queued,
                                   running_tasks=s.running) for s in worker_samples.since(session, env.id, start)]
