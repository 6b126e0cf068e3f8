"""Snapshots of environments (Cloud Composer's feature): take, list, delete, restore, clone.

A snapshot is one archive (hangar.runtime.snapshot_archive) holding the spec of the
revision that ran, a pg_dump of the environment's Airflow metadata database, and its
DAGs and plugins, with a sha256 recorded in the store. Archives live under
HANGAR_HOME/snapshots/<environment id>/.

- Taking a snapshot is an operation of kind SNAPSHOT on the environment's reconciler
  queue, so it never races an update: AVAILABLE -> CREATING_SNAPSHOT -> AVAILABLE.
  pg_dump is online; the environment keeps running and serving.
- Restoring into the same environment makes a new revision whose spec is the
  snapshot's, except that `dags` and `plugins` point at a Hangar-managed folder,
  HANGAR_HOME/environments/<id>/restored/<snapshot id>/{dags,plugins}, where the
  archive's files are unpacked (a bucket source is dropped: the snapshot's files are
  what runs). Status UPDATING; the components stop, the database is replaced, the
  revision launches. The environment takes the snapshot's fernet key, which its
  restored connections and variables are encrypted with.
- Restoring `into` a new name clones: a new environment (CREATING) with its own
  secrets but the snapshot's fernet key, whose database is loaded from the dump
  before its first launch.
- Invariant: an archive is verified (its sha256 against the store, every member
  against the manifest) before anything is stopped or changed; a corrupted one is
  refused with SnapshotCorrupted and the target stays as it was.

`take_snapshot` and `restore_database` are synchronous building blocks for callers on
the reconciler's thread (the snapshot operation, and the in-place Airflow upgrade that
snapshots before migrating and restores the database if it must go back); they change
no status.
"""
from __future__ import annotations

import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from hangar.schemas.operations import OperationKind, StepRecord
from hangar.buckets import store as buckets
from hangar.context import Context
from hangar.domain import keys
from hangar.domain.environments import database_name, open_new_environment
from hangar.domain.queries import get_environment
from hangar.domain.secrets import FERNET_KEY, fernet_keys, new_secrets
from hangar.domain.lifecycle import change_status
from hangar.schemas.public import EnvironmentPublic
from hangar.schemas.spec import Name, Spec
from hangar.domain.status import UPDATABLE, Status
from hangar.errors import EnvironmentAlreadyExists, EnvironmentBusy, SnapshotNotFound
from hangar.runtime import metadb, plugins, snapshot_archive
from hangar.runtime.airflow_config import EnvironmentLayout
from hangar.store import repository
from hangar.store import snapshots as store
from hangar.store.models import EnvironmentRow, OperationRow, SnapshotRow, utcnow

# kinds of snapshot (the operations that take, restore and clone them: hangar.reconciler.operations)
MANUAL, SCHEDULED, PRE_UPGRADE = "manual", "scheduled", "pre-upgrade"


class SnapshotPublic(BaseModel):
    id: str
    environment: str
    revision: int
    kind: str
    created_at: datetime
    airflow_version: str
    size: int
    sha256: str


class SnapshotRequested(BaseModel):
    """The id a requested snapshot will have, and the environment taking it."""

    snapshot_id: str
    environment: EnvironmentPublic


class SnapshotRestore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # None restores into the same environment; a name clones into a new environment
    into: Name | None = None


# --- use cases ---


def create_snapshot(ctx: Context, *, name: str) -> SnapshotRequested:
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        if env.status != Status.AVAILABLE or env.running_revision is None:
            raise EnvironmentBusy(name, env.status)
        snapshot_id, operation_id = _open_snapshot(session, env, kind=MANUAL)
        env_id = env.id
    ctx.submit(env_id, operation_id)
    return SnapshotRequested(snapshot_id=snapshot_id, environment=get_environment(ctx, name=name))


def request_scheduled_snapshot(ctx: Context, *, env_id: str) -> str | None:
    """The scheduler's entry: a snapshot of kind SCHEDULED, or None if the environment is not AVAILABLE now."""
    with ctx.store.session() as session:
        env = repository.get_by_id(session, env_id)
        if env.status != Status.AVAILABLE or env.running_revision is None:
            return None
        snapshot_id, operation_id = _open_snapshot(session, env, kind=SCHEDULED)
    ctx.submit(env_id, operation_id)
    return snapshot_id


def list_snapshots(ctx: Context, *, name: str) -> list[SnapshotPublic]:
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        return [_public(row) for row in store.list_for(session, env.id)]


def delete_snapshot(ctx: Context, *, name: str, snapshot_id: str) -> None:
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        row = _get(session, env, snapshot_id)
        if snapshot_id in snapshots_in_use(session):
            raise EnvironmentBusy(name, f"restoring from snapshot {snapshot_id}")
        path = Path(row.path)
        store.delete(session, row)
    path.unlink(missing_ok=True)


def restore_snapshot(ctx: Context, *, name: str, snapshot_id: str, into: str | None = None) -> EnvironmentPublic:
    """Restore into environment `name` itself, or clone into a new environment `into`.

    The archive is verified first; SnapshotCorrupted leaves everything as it was."""
    with ctx.store.session() as session:
        row = _get(session, repository.get_live(session, name), snapshot_id)
        path, sha256 = Path(row.path), row.sha256
    manifest = snapshot_archive.verify(path, sha256=sha256)
    has_plugins = any(member.startswith("plugins/") for member in manifest.members)
    if into is None:
        return _restore_in_place(ctx, name=name, snapshot_id=snapshot_id, spec=manifest.spec, has_plugins=has_plugins)
    return _clone(ctx, snapshot_id=snapshot_id, into=into, spec=manifest.spec, has_plugins=has_plugins)


# --- building blocks for the reconciler's thread (no status changes) ---


def take_snapshot(ctx: Context, *, env_id: str, revision: int, kind: str, snapshot_id: str | None = None) -> str:
    """Dump the database, pack it with the revision's spec, DAGs and plugins, record it; return its id.

    The environment keeps running. Taking a snapshot whose id is already recorded does
    nothing, so an operation interrupted after the record was written may run again."""
    snapshot_id = snapshot_id or repository.new_id()
    with ctx.store.session() as session:
        if store.find(session, snapshot_id) is not None:
            return snapshot_id
        env = repository.get_by_id(session, env_id)
        name, database = env.name, env.database_name
        spec = repository.get_spec(session, env_id, revision)
        secrets = repository.get_secrets(session, ctx.envelope, env_id=env_id)
    external = secrets.get("metadata_db_url")
    # a fernet rotation under way: the database may hold values under either key
    fernet = fernet_keys(secrets)
    layout = EnvironmentLayout(root=ctx.settings.environments_dir / env_id)  # DAGs mirrored from a bucket
    folder = ctx.settings.snapshots_dir / env_id
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    created = utcnow()
    manifest = snapshot_archive.Manifest(
        snapshot_id=snapshot_id, environment=name, environment_id=env_id, revision=revision, kind=kind,
        airflow_version=spec.airflow_version, created_at=created, spec=_self_contained(ctx, spec).model_dump(mode="json"),
    )
    with tempfile.TemporaryDirectory(dir=folder, prefix=".dump-") as scratch:
        dump = Path(scratch) / snapshot_archive.DB_DUMP
        if external:
            metadb.dump_url(external, dump)
        else:
            assert database is not None
            ctx.postgres.dump(database, dump)
        written = snapshot_archive.write_archive(
            folder / f"{snapshot_id}.tar.gz", manifest=manifest, db_dump=dump,
            dags=Path(spec.dags) if spec.dags else layout.dags, plugins=_user_plugins(ctx, spec, Path(scratch)),
            skip_plugins=frozenset(plugins.KEEP),
        )
    try:
        with ctx.store.session() as session:
            store.add(session, ctx.envelope, fernet_key=fernet, row=SnapshotRow(
                id=snapshot_id, environment_id=env_id, environment_name=name, revision=revision, kind=kind,
                created_at=created, path=str(written.path), size=written.size, sha256=written.sha256,
                airflow_version=spec.airflow_version,
            ))
    except Exception:
        written.path.unlink(missing_ok=True)
        raise
    return snapshot_id


def restore_database(ctx: Context, *, env_id: str, snapshot_id: str) -> None:
    """Replace the environment's metadata database with the snapshot's dump, after verifying the archive.

    The caller has stopped the components. The fernet key is left as it is."""
    scratch_root = ctx.settings.snapshots_dir / env_id
    scratch_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch_root, prefix=".restore-") as scratch:
        folder = Path(scratch) / "unpacked"
        _unpack_to(ctx, env_id=env_id, snapshot_id=snapshot_id, target=folder, own=True)
        load_database(ctx, env_id=env_id, dump=folder / snapshot_archive.DB_DUMP)


def restored_folder(ctx: Context, *, env_id: str, snapshot_id: str) -> Path:
    """Where a restore unpacks a snapshot's DAGs and plugins for environment `env_id` to run from."""
    return ctx.settings.environments_dir / env_id / "restored" / snapshot_id


def unpack(ctx: Context, *, env_id: str, snapshot_id: str) -> Path:
    """Verify the snapshot and unpack it into restored_folder; nothing else changes. Returns the folder."""
    target = restored_folder(ctx, env_id=env_id, snapshot_id=snapshot_id)
    _unpack_to(ctx, env_id=env_id, snapshot_id=snapshot_id, target=target, own=False)
    return target


def load_database(ctx: Context, *, env_id: str, dump: Path) -> None:
    """Replace the environment's metadata database (embedded or external) with `dump`."""
    with ctx.store.session() as session:
        database = repository.get_by_id(session, env_id).database_name
        external = repository.get_secrets(session, ctx.envelope, env_id=env_id).get("metadata_db_url")
    if external:
        metadb.restore_url(external, dump)
    else:
        assert database is not None
        ctx.postgres.restore(database, dump)


def adopt_fernet_key(ctx: Context, *, env_id: str, snapshot_id: str) -> None:
    """Give the environment the fernet key its restored database's secrets are encrypted with."""
    with ctx.store.session() as session:
        key = store.fernet_key(ctx.envelope, _row(session, snapshot_id))
        if repository.get_secrets(session, ctx.envelope, env_id=env_id).get("fernet_key") != key:
            repository.put_secret(session, ctx.envelope, env_id=env_id, name="fernet_key", value=key)


def requested_snapshot(ctx: Context, *, operation_id: int) -> tuple[str, str]:
    """The (snapshot id, snapshot kind) an operation of kind SNAPSHOT, RESTORE or CLONE was opened for."""
    with ctx.store.session() as session:
        operation = session.get_one(OperationRow, operation_id)
        first = repository.steps_of(operation)[0]
        assert first.snapshot_id is not None
        return first.snapshot_id, first.kind or MANUAL


def snapshots_in_use(session) -> set[str]:
    """Snapshots that an unfinished operation takes or restores from."""
    return {step.snapshot_id for operation in repository.pending_operations(session)
            for step in repository.steps_of(operation)[:1] if step.snapshot_id}


def delete_expired(ctx: Context, *, env_id: str, snapshot_ids: list[str]) -> None:
    """Remove snapshots retention let go (the scheduler's use); ones in use by an operation stay."""
    paths = []
    with ctx.store.session() as session:
        busy = snapshots_in_use(session)
        for snapshot_id in snapshot_ids:
            row = store.find(session, snapshot_id)
            if row is not None and row.environment_id == env_id and snapshot_id not in busy:
                paths.append(Path(row.path))
                store.delete(session, row)
    for path in paths:
        path.unlink(missing_ok=True)


# --- helpers ---


def _open_snapshot(session, env: EnvironmentRow, *, kind: str) -> tuple[str, int]:
    snapshot_id = repository.new_id()
    change_status(session, env, Status.CREATING_SNAPSHOT, reason=f"taking {kind} snapshot {snapshot_id}")
    operation = repository.open_operation(session, env_id=env.id, kind=OperationKind.SNAPSHOT, revision=env.running_revision,
                                          first=_requested_step(f"{kind} snapshot {snapshot_id} requested", snapshot_id, kind))
    return snapshot_id, operation.id


def _requested_step(text: str, snapshot_id: str, kind: str = MANUAL) -> StepRecord:
    return StepRecord(step=text, snapshot_id=snapshot_id, kind=kind)


def _restore_in_place(ctx: Context, *, name: str, snapshot_id: str, spec: dict, has_plugins: bool) -> EnvironmentPublic:
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        if Status(env.status) not in UPDATABLE:
            raise EnvironmentBusy(name, env.status)
        current = repository.get_spec(session, env.id, env.revision)
        restored = _restored_spec(spec, folder=restored_folder(ctx, env_id=env.id, snapshot_id=snapshot_id),
                                  has_plugins=has_plugins, external_metadata_db=current.external_metadata_db)
        kms_key = keys.resolve(session, ctx.envelope, restored.kms_key)  # a key gone since is refused here
        if restored.kms_key != current.kms_key:
            repository.rewrap_secrets(session, ctx.envelope, kms_key_id=kms_key.id, env_id=env.id)
        env.revision += 1
        repository.add_revision(session, env, restored, env.revision)
        change_status(session, env, Status.UPDATING, reason=f"restore of snapshot {snapshot_id} requested")
        operation = repository.open_operation(session, env_id=env.id, kind=OperationKind.RESTORE, revision=env.revision,
                                              first=_requested_step(f"restore of snapshot {snapshot_id} requested", snapshot_id))
        env_id, operation_id = env.id, operation.id
    ctx.submit(env_id, operation_id)
    return get_environment(ctx, name=name)


def _clone(ctx: Context, *, snapshot_id: str, into: str, spec: dict, has_plugins: bool) -> EnvironmentPublic:
    env_id = repository.new_id()
    restored = _restored_spec(spec, folder=restored_folder(ctx, env_id=env_id, snapshot_id=snapshot_id),
                              has_plugins=has_plugins, external_metadata_db=False)
    kms_key_id = keys.key_id_for(ctx, ref=restored.kms_key)
    with ctx.store.session() as session:
        if repository.find_live(session, into) is not None:
            raise EnvironmentAlreadyExists(into)
        secrets = {**new_secrets(), FERNET_KEY: store.fernet_key(ctx.envelope, _row(session, snapshot_id))}
        requested = f"clone from snapshot {snapshot_id} requested"
        operation_id = open_new_environment(
            ctx, session, env_id=env_id, name=into, spec=restored, secrets=secrets, kms_key_id=kms_key_id,
            database=database_name(env_id), reason=requested, kind=OperationKind.CLONE,
            first=_requested_step(requested, snapshot_id))
    ctx.submit(env_id, operation_id)
    return get_environment(ctx, name=into)


def _restored_spec(spec: dict, *, folder: Path, has_plugins: bool, external_metadata_db: bool) -> Spec:
    """The snapshot's spec, running the files unpacked into `folder`."""
    return Spec.model_validate({
        **spec, "dags": str(folder / "dags"), "source": None, "plugins": str(folder / "plugins") if has_plugins else None,
        "plugins_sha256": None, "external_metadata_db": external_metadata_db,
    })


def _self_contained(ctx: Context, spec: Spec) -> Spec:
    """The spec as it ran, not depending on a bucket: requirements and startup script at their pinned versions."""
    source = spec.source
    if source is None:
        return spec
    changes = {}
    for path_field, version_field, target in (
        ("requirements_s3_path", "requirements_s3_object_version", "requirements"),
        ("startup_script_s3_path", "startup_script_s3_object_version", "startup_script"),
    ):
        key = getattr(source, path_field)
        if key and getattr(spec, target) is None:
            changes[target] = buckets.get_object(ctx, bucket=source.bucket, key=key,
                                                 version_id=getattr(source, version_field)).data.decode()
    return spec.model_copy(update=changes)


def _user_plugins(ctx: Context, spec: Spec, scratch: Path) -> Path | None:
    """The user's plugins of `spec` as a folder (a plugins.zip, local or in a bucket, unpacked into `scratch`)."""
    source = spec.source
    archive = None
    if source is not None and source.plugins_s3_path:
        archive = buckets.get_object(ctx, bucket=source.bucket, key=source.plugins_s3_path,
                                     version_id=source.plugins_s3_object_version).data
    elif spec.plugins and Path(spec.plugins).is_file():
        archive = Path(spec.plugins).read_bytes()
    elif spec.plugins:
        return Path(spec.plugins)
    if archive is None:
        return None
    folder = scratch / "plugins"
    folder.mkdir()
    plugins.unpack_zip(archive, folder)
    return folder


def _unpack_to(ctx: Context, *, env_id: str, snapshot_id: str, target: Path, own: bool) -> None:
    """Unpack into `target`; `own` requires the snapshot to be the environment's own (not a clone's source)."""
    with ctx.store.session() as session:
        row = _row(session, snapshot_id)
        if own and row.environment_id != env_id:
            raise SnapshotNotFound(repository.get_by_id(session, env_id).name, snapshot_id)
        path, sha256 = Path(row.path), row.sha256
    partial = target.with_name(f".{target.name}.partial")
    snapshot_archive.extract(path, sha256=sha256, target=partial)
    if target.exists():
        shutil.rmtree(target)
    partial.rename(target)


def _row(session, snapshot_id: str) -> SnapshotRow:
    row = store.find(session, snapshot_id)
    if row is None:
        raise SnapshotNotFound(None, snapshot_id)
    return row


def _get(session, env: EnvironmentRow, snapshot_id: str) -> SnapshotRow:
    row = store.find(session, snapshot_id)
    if row is None or row.environment_id != env.id:
        raise SnapshotNotFound(env.name, snapshot_id)
    return row


def _public(row: SnapshotRow) -> SnapshotPublic:
    return SnapshotPublic(id=row.id, environment=row.environment_name, revision=row.revision, kind=row.kind,
                          created_at=row.created_at, airflow_version=row.airflow_version, size=row.size,
                          sha256=row.sha256)
