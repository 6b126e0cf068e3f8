"""Use cases on environments. Native and MWAA routes call these with keyword arguments.

Each mutating call stores the user's intent (a new revision and an operation
record) and a status change in one transaction, then hands the operation to the
reconciler. The call returns at once; the work is resumable from the store.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pydantic import ValidationError as PydanticValidationError

from hangar.schemas.operations import OperationKind, Outcome
from hangar.backend.components import web_component
from hangar.buckets import store as buckets
from hangar.context import Context
from hangar.domain import keys
from hangar.schemas.requirements import check_requirements
from hangar.domain.secrets import new_secrets
from hangar.domain.access import Principal
from hangar.domain.lifecycle import change_status
from hangar.domain.limits import check_task_processes
from hangar.schemas.public import ComponentPublic, EnvironmentPublic, ErrorInfo, EventPublic, LastUpdate, RevisionPublic, TokenPublic, WorkerSamplePublic, WorkersPublic
from hangar.schemas.spec import EnvironmentCreate, EnvironmentUpdate, Executor, Spec
from hangar.schemas.versions import parse_version
from hangar.schemas.classes import EnvironmentClass
from hangar.domain.changes import ChangeKind, ChangePlan, PackageChange, describe_changes, plan_change
from hangar.domain.status import UPDATABLE, Status
from hangar.errors import CeleryBrokerNotConfigured, EnvironmentAlreadyExists, EnvironmentBusy, ValidationFailed
from hangar.runtime import plugins, upgrade
from hangar.runtime.airflow_config import base_url
from hangar.runtime.airflow_addon.hangar_airflow.tokens import mint
from hangar.store import repository, worker_samples
from hangar.store.models import EnvironmentRow, utcnow

TOKEN_SECONDS = 2 * 3600


def create_environment(ctx: Context, *, request: EnvironmentCreate) -> EnvironmentPublic:
    with ctx.store.session() as session:
        if repository.find_live(session, request.name) is not None:
            raise EnvironmentAlreadyExists(request.name)
    spec = pin_plugins(pin_source(ctx, _valid(request.to_spec)))
    if "executor" not in request.model_fields_set and ctx.settings.celery_broker_url and \
            spec.environment_class in CELERY_BY_DEFAULT:
        spec = spec.model_copy(update={"executor": Executor.celery})
    check_executor(ctx, spec)
    check_task_processes(spec, host_limit=ctx.settings.max_task_processes)
    kms_key_id = keys.key_id_for(ctx, ref=spec.kms_key)  # an unknown KmsKey is refused before anything is stored
    with ctx.store.session() as session:
        if repository.find_live(session, request.name) is not None:
            raise EnvironmentAlreadyExists(request.name)
        env_id = repository.new_id()
        env = EnvironmentRow(
            id=env_id, name=request.name, status=Status.CREATING, status_reason="queued", revision=1,
            ports={}, database_name=None if request.metadata_db_url else f"hangar_env_{env_id.replace('-', '')}",
            created_at=utcnow(), last_update_status="PENDING", last_update_at=utcnow(), last_update_revision=1,
        )
        repository.add_environment(session, env)
        repository.add_event(session, env, previous=None, status=Status.CREATING, reason="create requested")
        repository.add_revision(session, env, spec, 1)
        for name, value in new_secrets().items():
            repository.put_secret(session, ctx.envelope, env_id=env_id, name=name, value=value, kms_key_id=kms_key_id)
        if request.metadata_db_url:
            repository.put_secret(session, ctx.envelope, env_id=env_id, name="metadata_db_url", value=request.metadata_db_url,
                                  kms_key_id=kms_key_id)
        operation = repository.open_operation(session, env_id=env_id, kind=OperationKind.CREATE, revision=1)
        operation_id = operation.id
    ctx.submit(env_id, operation_id)
    return get_environment(ctx, name=request.name)


def update_environment(ctx: Context, *, name: str, request: EnvironmentUpdate) -> EnvironmentPublic:
    """Store the next revision and hand it to the reconciler, which applies it by the least
    disruptive path (hangar.domain.changes)."""
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        if Status(env.status) not in UPDATABLE:
            raise EnvironmentBusy(name, env.status)
        spec = _next_spec(ctx, session, env, lambda current: current.merged(request), allow_downgrade=request.allow_downgrade)
        if _unchanged(session, env, spec):  # nothing to apply: no revision, no operation
            return _public(ctx, session, env)
        env_id, operation_id = _open_update(ctx, session, env, spec, reason=f"update to revision {env.revision + 1} requested")
    ctx.submit(env_id, operation_id)
    return get_environment(ctx, name=name)


def _unchanged(session, env: EnvironmentRow, spec: Spec) -> bool:
    """The spec is the one that runs, and the latest revision is running (a failed one may be retried)."""
    return (env.status == Status.AVAILABLE and env.running_revision == env.revision
            and repository.get_spec(session, env.id, env.revision) == spec)


def rollback_environment(ctx: Context, *, name: str, to: int, allow_downgrade: bool = False) -> EnvironmentPublic:
    """Apply an earlier revision's spec as a new revision, through the same safe path as an update."""
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        if Status(env.status) not in UPDATABLE:
            raise EnvironmentBusy(name, env.status)
        if not 1 <= to <= env.revision:
            raise ValidationFailed(f"{name} has revisions 1 to {env.revision}; there is no revision {to}")
        old = repository.get_spec(session, env.id, to)
        spec = _next_spec(ctx, session, env, lambda current: old.model_copy(update={"tags": current.tags}),
                          allow_downgrade=allow_downgrade)
        env_id, operation_id = _open_update(ctx, session, env, spec,
                                            reason=f"rollback to revision {to} requested (as revision {env.revision + 1})")
    ctx.submit(env_id, operation_id)
    return get_environment(ctx, name=name)


def plan_update(ctx: Context, *, name: str, request: EnvironmentUpdate) -> ChangePlan:
    """What `update_environment` would do, with the resolved package diff; nothing is changed."""
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        spec = _next_spec(ctx, session, env, lambda current: current.merged(request), allow_downgrade=request.allow_downgrade)
        running_revision = env.running_revision or env.revision
        running = repository.get_spec(session, env.id, running_revision)
        env_id, next_revision, epoch = env.id, env.revision + 1, env.runtime_epoch
    plan = plan_change(running, spec, root=ctx.settings.environments_dir / env_id, from_revision=running_revision,
                       to_revision=next_revision)
    if plan.kind in (ChangeKind.RUNTIME, ChangeKind.UPGRADE) and running.source is None and spec.source is None:
        from hangar.runtime import preflight
        from hangar.runtime.venvs import Runtime, builder_for, runtime_key

        key = runtime_key(python=ctx.settings.runtime_python, airflow_version=running.airflow_version,
                          requirements=running.requirements, epoch=epoch, celery=running.executor == Executor.celery)
        old = Runtime(key=key, path=ctx.settings.runtimes_dir / key, airflow_version=running.airflow_version)
        if old.python.exists():
            diff = preflight.package_diff(old=old, airflow_version=spec.airflow_version, requirements=spec.requirements,
                                          celery=spec.executor == Executor.celery,
                                          builder=builder_for(ctx.settings.isolated))
            plan.packages = ([PackageChange(name=p.name, new=p.version) for p in diff.added]
                             + [PackageChange(name=p.name, old=p.version) for p in diff.removed]
                             + [PackageChange(name=p.name, old=p.old, new=p.new) for p in diff.changed])
    return plan


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


def _next_spec(ctx: Context, session, env: EnvironmentRow, build: Callable[[Spec], Spec], *, allow_downgrade: bool) -> Spec:
    """The next revision's spec, checked: the Airflow version path, the bucket pins, the plugins digest."""
    current = repository.get_spec(session, env.id, _base_revision(env))
    spec = pin_plugins(pin_source(ctx, _valid(lambda: build(current))))
    # the metadata database is at the running revision's version
    on = repository.get_spec(session, env.id, env.running_revision) if env.running_revision else current
    if spec.airflow_version != on.airflow_version:
        upgrade.plan_upgrade(current=on.airflow_version, target=spec.airflow_version, allow_downgrade=allow_downgrade)
    check_executor(ctx, spec)
    check_task_processes(spec, host_limit=ctx.settings.max_task_processes)
    return spec


# Classes that run Celery workers when the control plane has a broker and the request does not
# name an executor; the smallest classes keep the LocalExecutor.
CELERY_BY_DEFAULT = frozenset(EnvironmentClass) - {EnvironmentClass.small, EnvironmentClass.mw1_micro,
                                                   EnvironmentClass.mw1_small}


def check_executor(ctx: Context, spec: Spec) -> None:
    """A Celery revision needs the control plane's broker, and the broker must answer now:
    refused here, nothing is stored and a running environment keeps its executor."""
    if spec.executor != Executor.celery:
        return
    from hangar.runtime import broker

    if not ctx.settings.celery_broker_url:
        raise CeleryBrokerNotConfigured()
    broker.check_reachable(ctx.settings.celery_broker_url)


def _base_revision(env: EnvironmentRow) -> int:
    """What an update changes: the latest revision, or the running one when the latest failed
    (as on MWAA, a failed update leaves the configuration it failed to apply behind)."""
    failed = env.last_update_status == "FAILED" and env.last_update_revision == env.revision
    return env.running_revision if failed and env.running_revision is not None else env.revision


def _open_update(ctx: Context, session, env: EnvironmentRow, spec: Spec, *, reason: str) -> tuple[str, int]:
    current = repository.get_spec(session, env.id, env.revision)
    if spec.kms_key != current.kms_key:  # checked here; the data keys move under the new key at once
        kms_key = keys.resolve(session, ctx.envelope, spec.kms_key)
        repository.rewrap_secrets(session, ctx.envelope, kms_key_id=kms_key.id, env_id=env.id)
    env.revision += 1
    repository.add_revision(session, env, spec, env.revision)
    change_status(session, env, Status.UPDATING, reason=reason)
    operation = repository.open_operation(session, env_id=env.id, kind=OperationKind.UPDATE, revision=env.revision)
    return env.id, operation.id


def pin_plugins(spec: Spec) -> Spec:
    """Record the plugins' digest, so a changed folder makes a changed revision."""
    if spec.plugins is None:
        return spec.model_copy(update={"plugins_sha256": None})
    folder = Path(spec.plugins)
    if not folder.exists():
        raise ValidationFailed(f"plugins {spec.plugins!r} does not exist")
    return spec.model_copy(update={"plugins_sha256": plugins.content_sha256(folder)})


def delete_environment(ctx: Context, *, name: str) -> EnvironmentPublic:
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        latest = repository.latest_operation(session, env.id)
        if env.status == Status.DELETING and latest is not None and not latest.done:
            env_id, operation_id = env.id, None  # already being deleted
        elif env.status == Status.DELETING:  # an earlier delete failed: try again
            operation = repository.open_operation(session, env_id=env.id, kind=OperationKind.DELETE, revision=env.revision)
            env_id, operation_id = env.id, operation.id
        else:
            if env.status in (Status.UPDATING, Status.ROLLING_BACK, Status.MAINTENANCE, Status.CREATING_SNAPSHOT):
                raise EnvironmentBusy(name, env.status)
            change_status(session, env, Status.DELETING, reason="delete requested")
            operation = repository.open_operation(session, env_id=env.id, kind=OperationKind.DELETE, revision=env.revision)
            env_id, operation_id = env.id, operation.id
        public = _public(ctx, session, env)
    if operation_id is not None:
        ctx.submit(env_id, operation_id)
    return public


def get_environment(ctx: Context, *, name: str) -> EnvironmentPublic:
    with ctx.store.session() as session:
        return _public(ctx, session, repository.get_live(session, name))


def list_environments(ctx: Context) -> list[EnvironmentPublic]:
    with ctx.store.session() as session:
        return [_public(ctx, session, env) for env in repository.list_live(session)]


def list_events(ctx: Context, *, name: str) -> list[EventPublic]:
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        return [
            EventPublic(at=e.at, status=e.status, previous=e.previous, reason=e.reason)
            for e in repository.list_events(session, env.id)
        ]


def environment_token(
    ctx: Context, *, name: str, principal: Principal, valid_for: int = TOKEN_SECONDS, purpose: str = "api"
) -> TokenPublic:
    """A bearer token for the environment's Airflow, carrying the caller's role.

    purpose "api" is for Airflow's REST API; "web" and "cli" are MWAA's short-lived,
    single-purpose web login and CLI tokens, accepted only by /aws_mwaa routes."""
    principal.require("login")
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        if env.running_revision is None:
            raise EnvironmentBusy(name, env.status)
        jwt_secret = repository.get_secrets(session, ctx.envelope, env_id=env.id)["jwt_secret"]
        major = parse_version(repository.get_spec(session, env.id, env.running_revision).airflow_version)[0]
        url = base_url(env.ports) if env.ports else None
    # Airflow 3 takes any user name with a role; Airflow 2's FAB needs an existing user,
    # one per role, created in the template database (see hangar.runtime.metadb)
    sub = principal.id if major >= 3 else principal.role.name.lower()
    token = mint(jwt_secret, sub=sub, role=principal.role.airflow3, valid_for_seconds=valid_for, purpose=purpose)
    expires = datetime.now(timezone.utc) + timedelta(seconds=valid_for)
    return TokenPublic(token=token, expires_at=expires, webserver_url=url, role=principal.role.name)


def set_tags(ctx: Context, *, name: str, add: dict[str, str] | None = None, remove: list[str] | None = None) -> dict[str, str]:
    """Tags are metadata: a new revision records them, and nothing restarts."""
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        current = repository.get_spec(session, env.id, env.revision)
        tags = {k: v for k, v in {**current.tags, **(add or {})}.items() if k not in set(remove or [])}
        if len(tags) > 50:
            raise ValidationFailed(f"an environment may have at most 50 tags; this would give it {len(tags)}")
        if tags == current.tags:
            return tags
        env.revision += 1
        repository.add_revision(session, env, current.model_copy(update={"tags": tags}), env.revision)
        if env.running_revision == env.revision - 1:
            env.running_revision = env.revision
        if env.last_good_revision == env.revision - 1:
            env.last_good_revision = env.revision
        return tags


# --- fernet key rotation (the work is Reconciler._rotate_fernet) ---



def rotate_fernet(ctx: Context, *, name: str) -> EnvironmentPublic:
    """Replace the environment's fernet key; Airflow's data is re-encrypted, nothing is lost.

    Runs as an operation of kind OperationKind.ROTATE_FERNET on the revision that runs now: UPDATING,
    then AVAILABLE, or UPDATE_FAILED with the error while the old key stays stored."""
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        if Status(env.status) not in UPDATABLE or env.running_revision is None:
            raise EnvironmentBusy(name, env.status)
        change_status(session, env, Status.UPDATING, reason="fernet key rotation requested")
        operation = repository.open_operation(session, env_id=env.id, kind=OperationKind.ROTATE_FERNET, revision=env.running_revision)
        env_id, operation_id = env.id, operation.id
    ctx.submit(env_id, operation_id)
    return get_environment(ctx, name=name)


def pin_source(ctx: Context, spec: Spec) -> Spec:
    """Check a bucket source and pin its objects to the versions they have now.

    A revision then names exact object versions, so later writes to the bucket never
    change what the revision runs (only the DAGs prefix follows the bucket, as on MWAA)."""
    source = spec.source
    if source is None:
        return spec
    buckets.get_bucket(ctx, name=source.bucket)
    pins: dict[str, str] = {}
    for path_field, version_field in (("requirements_s3_path", "requirements_s3_object_version"),
                                      ("plugins_s3_path", "plugins_s3_object_version"),
                                      ("startup_script_s3_path", "startup_script_s3_object_version")):
        key = getattr(source, path_field)
        if key:
            pins[version_field] = buckets.resolve_version(
                ctx, bucket=source.bucket, key=key, version_id=getattr(source, version_field))
    if source.requirements_s3_path:
        text = buckets.get_object(ctx, bucket=source.bucket, key=source.requirements_s3_path,
                                  version_id=pins["requirements_s3_object_version"]).data.decode(errors="replace")
        try:
            check_requirements(text)
        except ValidationFailed as exc:
            raise ValidationFailed(f"s3://{source.bucket}/{source.requirements_s3_path}: {exc.message}") from None
    return spec.model_copy(update={"source": source.model_copy(update=pins)})


def _valid(build: Callable[[], Spec]) -> Spec:
    """Cross-field rules (sizing against the class) are checked when the revision is made."""
    try:
        return build()
    except PydanticValidationError as exc:
        raise ValidationFailed("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None


def _public(ctx: Context, session, env: EnvironmentRow) -> EnvironmentPublic:
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
    return EnvironmentPublic(
        name=env.name, status=env.status, status_reason=env.status_reason, airflow_version=spec.airflow_version,
        webserver_url=base_url(env.ports) if env.ports else None, created_at=env.created_at, last_update=last_update,
        revision=env.revision, running_revision=env.running_revision, last_good_revision=env.last_good_revision,
        spec=desired, components=components, executor=spec.executor.value, workers=_workers(session, env, spec),
    )


def _workers(session, env: EnvironmentRow, spec: Spec) -> WorkersPublic | None:
    """The autoscaler's last reading (hangar.reconciler.loops.autoscaler) with the running revision's bounds."""
    if spec.executor != Executor.celery:
        return None
    sample = worker_samples.latest(session, env.id)
    assert spec.max_workers is not None and spec.worker_concurrency is not None
    if sample is None:
        return WorkersPublic(current=0, desired=spec.min_workers, min=spec.min_workers, max=spec.max_workers,
                             queued_tasks=0, running_tasks=0, concurrency=spec.worker_concurrency)
    return WorkersPublic(current=sample.current, desired=sample.desired, min=spec.min_workers, max=spec.max_workers,
                         queued_tasks=sample.queued, running_tasks=sample.running, concurrency=spec.worker_concurrency,
                         at=sample.at)


def worker_history(ctx: Context, *, name: str, minutes: float = 60) -> list[WorkerSamplePublic]:
    """The autoscaler's readings of the last `minutes`, oldest first."""
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        start = utcnow() - timedelta(minutes=minutes)
        return [WorkerSamplePublic(at=s.at, current=s.current, desired=s.desired, queued_tasks=s.queued,
                                   running_tasks=s.running) for s in worker_samples.since(session, env.id, start)]
