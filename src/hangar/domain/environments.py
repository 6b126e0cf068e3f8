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

from hangar.schemas.operations import OperationKind, StepRecord
from hangar.buckets import store as buckets
from hangar.context import Context
from hangar.domain import keys
from hangar.domain.git_dags import check_git
from hangar.schemas.requirements import check_requirements
from hangar.domain.queries import environment_public, get_environment
from hangar.domain.secrets import new_secrets
from hangar.domain.access import Principal
from hangar.domain.lifecycle import change_status
from hangar.domain.limits import check_task_processes
from hangar.schemas.public import EnvironmentPublic, TokenPublic
from hangar.schemas.spec import EnvironmentCreate, EnvironmentUpdate, Executor, Spec
from hangar.schemas.versions import parse_version
from hangar.schemas.classes import EnvironmentClass
from hangar.domain.changes import ChangeKind, ChangePlan, PackageChange, plan_change
from hangar.domain.status import UPDATABLE, Status
from hangar.errors import CeleryBrokerNotConfigured, EnvironmentAlreadyExists, EnvironmentBusy, ValidationFailed
from hangar.runtime import plugins, upgrade
from hangar.runtime.airflow_config import base_url
from hangar.runtime.airflow_addon.hangar_airflow.tokens import mint
from hangar.store import repository
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
    check_git(ctx, spec)
    check_task_processes(spec, host_limit=ctx.settings.max_task_processes)
    kms_key_id = keys.key_id_for(ctx, ref=spec.kms_key)  # an unknown KmsKey is refused before anything is stored
    with ctx.store.session() as session:
        if repository.find_live(session, request.name) is not None:
            raise EnvironmentAlreadyExists(request.name)
        env_id = repository.new_id()
        secrets = new_secrets() | ({"metadata_db_url": request.metadata_db_url} if request.metadata_db_url else {})
        operation_id = open_new_environment(
            ctx, session, env_id=env_id, name=request.name, spec=spec, secrets=secrets, kms_key_id=kms_key_id,
            database=None if request.metadata_db_url else database_name(env_id), reason="create requested",
            kind=OperationKind.CREATE)
    ctx.submit(env_id, operation_id)
    return get_environment(ctx, name=request.name)


def database_name(env_id: str) -> str:
    """The embedded PostgreSQL database (and role) of an environment."""
    return f"hangar_env_{env_id.replace('-', '')}"


def open_new_environment(ctx: Context, session, *, env_id: str, name: str, spec: Spec, secrets: dict[str, str],
                         kms_key_id: str | None, database: str | None, reason: str, kind: OperationKind,
                         first: StepRecord | None = None) -> int:
    """Record a new environment (CREATING, revision 1, its secrets) and open its first
    operation, in the caller's transaction; the operation's id."""
    env = EnvironmentRow(
        id=env_id, name=name, status=Status.CREATING, status_reason="queued", revision=1, ports={},
        database_name=database, created_at=utcnow(), last_update_status="PENDING", last_update_at=utcnow(),
        last_update_revision=1,
    )
    repository.add_environment(session, env)
    repository.add_event(session, env, previous=None, status=Status.CREATING, reason=reason)
    repository.add_revision(session, env, spec, 1)
    for secret, value in secrets.items():
        repository.put_secret(session, ctx.envelope, env_id=env_id, name=secret, value=value, kms_key_id=kms_key_id)
    return repository.open_operation(session, env_id=env_id, kind=kind, revision=1, first=first).id


def update_environment(ctx: Context, *, name: str, request: EnvironmentUpdate) -> EnvironmentPublic:
    """Store the next revision and hand it to the reconciler, which applies it by the least
    disruptive path (hangar.domain.changes)."""
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        if Status(env.status) not in UPDATABLE:
            raise EnvironmentBusy(name, env.status)
        spec = _next_spec(ctx, session, env, lambda current: current.merged(request), allow_downgrade=request.allow_downgrade)
        if _unchanged(session, env, spec):  # nothing to apply: no revision, no operation
            return environment_public(ctx, session, env)
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


def _next_spec(ctx: Context, session, env: EnvironmentRow, build: Callable[[Spec], Spec], *, allow_downgrade: bool) -> Spec:
    """The next revision's spec, checked: the Airflow version path, the bucket pins, the plugins digest."""
    current = repository.get_spec(session, env.id, _base_revision(env))
    spec = pin_plugins(pin_source(ctx, _valid(lambda: build(current))))
    # the metadata database is at the running revision's version
    on = repository.get_spec(session, env.id, env.running_revision) if env.running_revision else current
    if spec.airflow_version != on.airflow_version:
        upgrade.plan_upgrade(current=on.airflow_version, target=spec.airflow_version, allow_downgrade=allow_downgrade)
    check_executor(ctx, spec)
    check_git(ctx, spec)
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
        public = environment_public(ctx, session, env)
    if operation_id is not None:
        ctx.submit(env_id, operation_id)
    return public


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


# --- fernet key rotation (the work is hangar.reconciler.operations.rotate_fernet) ---



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
