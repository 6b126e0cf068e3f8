"""Use cases on environments. Native and MWAA routes call these with keyword arguments.

Each mutating call stores the user's intent (a new revision and an operation
record) and a status change in one transaction, then hands the operation to the
reconciler. The call returns at once; the work is resumable from the store.
"""
from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from cryptography.fernet import Fernet
from pydantic import ValidationError as PydanticValidationError

from hangar.backend.components import web_component
from hangar.buckets import store as buckets
from hangar.context import Context
from hangar.domain import keys
from hangar.domain.requirements import check_requirements
from hangar.domain.access import Principal
from hangar.domain.lifecycle import change_status
from hangar.domain.spec import (
    ComponentPublic, EnvironmentCreate, EnvironmentPublic, EnvironmentUpdate, ErrorInfo, EventPublic, LastUpdate,
    Spec, TokenPublic, parse_version,
)
from hangar.domain.status import UPDATABLE, Status
from hangar.errors import EnvironmentAlreadyExists, EnvironmentBusy, ValidationFailed
from hangar.runtime.airflow_config import base_url
from hangar.runtime.airflow_addon.hangar_airflow.tokens import mint
from hangar.store import repository
from hangar.store.models import EnvironmentRow, utcnow

TOKEN_SECONDS = 2 * 3600


def create_environment(ctx: Context, *, request: EnvironmentCreate) -> EnvironmentPublic:
    with ctx.store.session() as session:
        if repository.find_live(session, request.name) is not None:
            raise EnvironmentAlreadyExists(request.name)
    spec = pin_source(ctx, _valid(request.to_spec))
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
        session.add(env)
        session.flush()
        repository.add_event(session, env, previous=None, status=Status.CREATING, reason="create requested")
        repository.add_revision(session, env, spec, 1)
        for name, value in _new_secrets().items():
            repository.put_secret(session, ctx.envelope, env_id=env_id, name=name, value=value, kms_key_id=kms_key_id)
        if request.metadata_db_url:
            repository.put_secret(session, ctx.envelope, env_id=env_id, name="metadata_db_url", value=request.metadata_db_url,
                                  kms_key_id=kms_key_id)
        operation = repository.open_operation(session, env_id=env_id, kind="create", revision=1)
        operation_id = operation.id
    ctx.submit(env_id, operation_id)
    return get_environment(ctx, name=request.name)


def update_environment(ctx: Context, *, name: str, request: EnvironmentUpdate) -> EnvironmentPublic:
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        if Status(env.status) not in UPDATABLE:
            raise EnvironmentBusy(name, env.status)
        current = repository.get_spec(session, env.id, env.revision)
        spec = pin_source(ctx, _valid(lambda: current.merged(request)))
        if parse_version(spec.airflow_version) < parse_version(current.airflow_version):
            raise ValidationFailed(
                f"airflow_version {spec.airflow_version} is older than {current.airflow_version}: "
                "downgrading Airflow in place is not supported"
            )
        if parse_version(spec.airflow_version)[0] != parse_version(current.airflow_version)[0]:
            raise ValidationFailed(
                f"changing Airflow from {current.airflow_version} to {spec.airflow_version} crosses a major "
                "version; create a new environment for it"
            )
        if spec.kms_key != current.kms_key:  # checked here; the data keys move under the new key at once
            kms_key = keys.resolve(session, ctx.envelope, spec.kms_key)
            repository.rewrap_secrets(session, ctx.envelope, kms_key_id=kms_key.id, env_id=env.id)
        env.revision += 1
        repository.add_revision(session, env, spec, env.revision)
        change_status(session, env, Status.UPDATING, reason=f"update to revision {env.revision} requested")
        operation = repository.open_operation(session, env_id=env.id, kind="update", revision=env.revision)
        env_id, operation_id = env.id, operation.id
    ctx.submit(env_id, operation_id)
    return get_environment(ctx, name=name)


def delete_environment(ctx: Context, *, name: str) -> EnvironmentPublic:
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        latest = repository.latest_operation(session, env.id)
        if env.status == Status.DELETING and latest is not None and not latest.done:
            env_id, operation_id = env.id, None  # already being deleted
        elif env.status == Status.DELETING:  # an earlier delete failed: try again
            operation = repository.open_operation(session, env_id=env.id, kind="delete", revision=env.revision)
            env_id, operation_id = env.id, operation.id
        else:
            if env.status in (Status.UPDATING, Status.ROLLING_BACK):
                raise EnvironmentBusy(name, env.status)
            change_status(session, env, Status.DELETING, reason="delete requested")
            operation = repository.open_operation(session, env_id=env.id, kind="delete", revision=env.revision)
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

ROTATE_FERNET = "rotate-fernet"  # the operation's kind


def rotate_fernet(ctx: Context, *, name: str) -> EnvironmentPublic:
    """Replace the environment's fernet key; Airflow's data is re-encrypted, nothing is lost.

    Runs as an operation of kind ROTATE_FERNET on the revision that runs now: UPDATING,
    then AVAILABLE, or UPDATE_FAILED with the error while the old key stays stored."""
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        if Status(env.status) not in UPDATABLE or env.running_revision is None:
            raise EnvironmentBusy(name, env.status)
        change_status(session, env, Status.UPDATING, reason="fernet key rotation requested")
        operation = repository.open_operation(session, env_id=env.id, kind=ROTATE_FERNET, revision=env.running_revision)
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


def _new_secrets() -> dict[str, str]:
    return {
        "fernet_key": Fernet.generate_key().decode(),
        "jwt_secret": secrets.token_urlsafe(48),
        "secret_key": secrets.token_urlsafe(32),
    }


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
        spec=desired, components=components,
    )
