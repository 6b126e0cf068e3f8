"""take_snapshot and restore_database against a real embedded PostgreSQL (no Airflow needed).

These are the two calls an in-place upgrade makes from the reconciler's thread, so they
are checked on their own: a snapshot is listed like any other, the dump brings the
database back exactly, and a tampered archive changes nothing.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psycopg2
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hangar.backend.local import LocalBackend
from hangar.context import Context
from hangar.crypto import Envelope
from hangar.logstore.store import LogStore
from hangar.domain import snapshots
from hangar.schemas.spec import Spec
from hangar.domain.status import Status
from hangar.errors import SnapshotCorrupted, SnapshotNotFound
from hangar.runtime import snapshot_archive
from hangar.runtime.embedded_postgres import EmbeddedPostgres
from hangar.settings import Settings
from hangar.store import repository
from hangar.store.db import open_store
from hangar.store.models import EnvironmentRow, utcnow


@pytest.fixture(scope="module")
def postgres():
    # not under pytest's 0700 basetemp: as root, the embedded PostgreSQL runs as its own user
    home = Path(tempfile.mkdtemp(prefix="hangar-snap-"))
    home.chmod(0o755)
    server = EmbeddedPostgres(home / "pgdata")
    server.start()
    yield server
    server.stop()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def ctx(tmp_path: Path, postgres: EmbeddedPostgres) -> Context:
    settings = Settings(home=tmp_path / "home")
    settings.ensure_dirs()
    return Context(settings=settings, store=open_store(settings.state_dir / "hangar.db"),
                   envelope=Envelope(AESGCM.generate_key(bit_length=256)), postgres=postgres,
                   backend=LocalBackend(interval=1.0, on_health=lambda *_: None),
                   logs=LogStore.from_settings(settings), submit=lambda *_: None)


def _sql(ctx: Context, database: str, statement: str):
    connection = psycopg2.connect(host=ctx.postgres.socket_dir, user="postgres", dbname=database)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
            return cursor.fetchall() if cursor.description else None
    finally:
        connection.close()


@pytest.fixture
def env(ctx: Context, tmp_path: Path) -> EnvironmentRow:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "hello.py").write_text("# a DAG\n")
    env_id = repository.new_id()
    database = f"hangar_env_{env_id.replace('-', '')}"
    with ctx.store.session() as session:
        row = EnvironmentRow(id=env_id, name="snap", status=Status.AVAILABLE, revision=1, running_revision=1,
                             last_good_revision=1, ports={}, database_name=database, created_at=utcnow())
        session.add(row)
        session.flush()
        repository.add_revision(session, row, Spec(airflow_version="3.3.2", dags=str(dags)), 1)
        repository.put_secret(session, ctx.envelope, env_id=env_id, name="fernet_key", value="fernet-1")
    ctx.postgres.drop(database)
    with ctx.postgres.admin() as cursor:
        cursor.execute(f"CREATE DATABASE {database}")
    _sql(ctx, database, "CREATE TABLE dag_run (id int); INSERT INTO dag_run VALUES (1), (2)")
    yield row
    ctx.postgres.drop(database)


def test_take_snapshot_then_restore_database(ctx: Context, env: EnvironmentRow) -> None:
    snapshot_id = snapshots.take_snapshot(ctx, env_id=env.id, revision=1, kind=snapshots.PRE_UPGRADE)
    listed = snapshots.list_snapshots(ctx, name="snap")
    assert [(s.id, s.kind, s.revision, s.airflow_version) for s in listed] == [
        (snapshot_id, "pre-upgrade", 1, "3.3.2")]
    archive = ctx.settings.snapshots_dir / env.id / f"{snapshot_id}.tar.gz"
    assert archive.is_file() and listed[0].size == archive.stat().st_size
    # the same id again is a no-op: an interrupted operation may run twice
    assert snapshots.take_snapshot(ctx, env_id=env.id, revision=1, kind="manual", snapshot_id=snapshot_id) == snapshot_id
    assert len(snapshots.list_snapshots(ctx, name="snap")) == 1

    # what a failed migration might leave behind
    _sql(ctx, env.database_name, "INSERT INTO dag_run VALUES (3); CREATE TABLE added_by_upgrade (x int)")
    snapshots.restore_database(ctx, env_id=env.id, snapshot_id=snapshot_id)
    assert _sql(ctx, env.database_name, "SELECT id FROM dag_run ORDER BY id") == [(1,), (2,)]
    assert _sql(ctx, env.database_name, "SELECT count(*) FROM pg_tables WHERE tablename = 'added_by_upgrade'") == [(0,)]
    assert not list((ctx.settings.snapshots_dir / env.id).glob(".restore-*"))


def test_a_tampered_archive_leaves_the_database_alone(ctx: Context, env: EnvironmentRow) -> None:
    snapshot_id = snapshots.take_snapshot(ctx, env_id=env.id, revision=1, kind=snapshots.MANUAL)
    archive = ctx.settings.snapshots_dir / env.id / f"{snapshot_id}.tar.gz"
    data = bytearray(archive.read_bytes())
    data[-100] ^= 0x01
    archive.write_bytes(bytes(data))
    _sql(ctx, env.database_name, "INSERT INTO dag_run VALUES (3)")
    with pytest.raises(SnapshotCorrupted, match="sha256"):
        snapshots.restore_database(ctx, env_id=env.id, snapshot_id=snapshot_id)
    assert _sql(ctx, env.database_name, "SELECT id FROM dag_run ORDER BY id") == [(1,), (2,), (3,)]


def test_unknown_snapshot(ctx: Context, env: EnvironmentRow) -> None:
    with pytest.raises(SnapshotNotFound):
        snapshots.restore_database(ctx, env_id=env.id, snapshot_id="nope")
    with pytest.raises(SnapshotNotFound, match="'snap' has no snapshot"):
        snapshots.delete_snapshot(ctx, name="snap", snapshot_id="nope")


def test_delete_removes_row_and_file(ctx: Context, env: EnvironmentRow) -> None:
    snapshot_id = snapshots.take_snapshot(ctx, env_id=env.id, revision=1, kind=snapshots.MANUAL)
    archive = ctx.settings.snapshots_dir / env.id / f"{snapshot_id}.tar.gz"
    snapshots.delete_snapshot(ctx, name="snap", snapshot_id=snapshot_id)
    assert not archive.exists() and snapshots.list_snapshots(ctx, name="snap") == []


def test_the_users_plugins_go_in_hangars_own_stay_out(ctx: Context, env: EnvironmentRow, tmp_path: Path) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "mine.py").write_text("X = 1\n")
    (folder / "hangar_login.py").write_text("# Hangar's own, added to every plugins folder\n")
    with ctx.store.session() as session:
        row = repository.get_by_id(session, env.id)
        spec = repository.get_spec(session, env.id, 1).model_copy(update={"plugins": str(folder)})
        repository.add_revision(session, row, spec, 2)
    snapshot_id = snapshots.take_snapshot(ctx, env_id=env.id, revision=2, kind=snapshots.MANUAL)
    (taken,) = snapshots.list_snapshots(ctx, name="snap")
    manifest = snapshot_archive.verify(ctx.settings.snapshots_dir / env.id / f"{snapshot_id}.tar.gz",
                                       sha256=taken.sha256)
    assert sorted(manifest.members) == ["dags/hello.py", "db.dump", "plugins/mine.py"]
    assert manifest.revision == 2 and manifest.spec["plugins"] == str(folder)
