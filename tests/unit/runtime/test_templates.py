"""Template databases restored from the dump another home saved, on real embedded PostgreSQL servers.

A stand-in `airflow` (a script in a fake runtime) "migrates" by creating a tiny schema with an
Alembic revision and counts its runs, so the tests see when a template was migrated and when
it was restored: the first home migrates and saves the dump in the shared runtimes folder, a
second home restores it without migrating, and a dump that cannot be used is migrated past
and replaced. The homes share one server under different template names (a server per home
would only cost start-up time: the dump is logical, read back through pg_restore either way).
"""
from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from pathlib import Path

import psycopg2
import pytest

from hangar.runtime import templates
from hangar.runtime.embedded_postgres import EmbeddedPostgres
from hangar.runtime.venvs import READY_MARKER, Runtime

FAKE_AIRFLOW = '''#!{python}
import os, sys
import psycopg2
from hangar.runtime.pg_clients import libpq_url

with open({runs!r}, "a") as runs:
    runs.write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[1:3] == ["db", "migrate"]:
    connection = psycopg2.connect(libpq_url(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]))
    with connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        cursor.execute("INSERT INTO alembic_version VALUES ('fake0001')")
        cursor.execute("CREATE TABLE slot_pool (id serial PRIMARY KEY, pool varchar(256), slots int)")
        cursor.execute("INSERT INTO slot_pool (pool, slots) VALUES ('default_pool', 128)")
    connection.close()
'''


@pytest.fixture(scope="module")
def postgres():
    # not under pytest's 0700 basetemp: as root, the embedded PostgreSQL runs as its own user
    home = Path(tempfile.mkdtemp(prefix="hangar-tpl-"))
    home.chmod(0o755)
    server = EmbeddedPostgres(home / "pgdata")
    server.start()
    with server.admin() as cursor:  # a throwaway server: no waiting on the disk at every commit and copy
        cursor.execute("ALTER SYSTEM SET fsync = off")
        cursor.execute("SELECT pg_reload_conf()")
    yield server
    server.stop()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    key = tmp_path.name[-16:].replace("-", "_").lower().rjust(16, "0")
    path = tmp_path / "shared-runtimes" / key
    (path / "bin").mkdir(parents=True)
    airflow = path / "bin" / "airflow"
    airflow.write_text(FAKE_AIRFLOW.format(python=sys.executable, runs=str(tmp_path / "runs")))
    airflow.chmod(0o755)
    (path / READY_MARKER).write_text("3.3.2")
    return Runtime(key=key, path=path, airflow_version="3.3.2")


def migrations(runtime: Runtime) -> int:
    runs = runtime.path.parents[1] / "runs"
    return runs.read_text().count("db migrate") if runs.exists() else 0


def rows(postgres: EmbeddedPostgres, database: str) -> list[tuple]:
    connection = psycopg2.connect(host=postgres.socket_dir, user="postgres", dbname=database)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT v.version_num, p.pool, p.slots FROM alembic_version v, slot_pool p")
            return cursor.fetchall()
    finally:
        connection.close()


def fresh(postgres: EmbeddedPostgres, *names: str) -> None:
    for name in names:
        postgres.drop(name)


def test_a_second_home_restores_the_template_the_first_one_migrated(postgres, runtime: Runtime):
    fresh(postgres, "hangar_tpl_a1", "hangar_tpl_b1", "hangar_env_a1", "hangar_env_b1")
    dump = templates.dump_path(runtime, pg_major=templates.server_major(postgres))

    postgres.ensure_template("hangar_tpl_a1", runtime=runtime, progress=lambda _: None)
    assert migrations(runtime) == 1
    assert dump.is_file() and dump.parent == runtime.path.parent
    assert not list(dump.parent.glob(".*.tmp"))

    messages: list[str] = []
    postgres.ensure_template("hangar_tpl_b1", runtime=runtime, progress=messages.append)
    assert migrations(runtime) == 1  # restored, not migrated
    assert messages == [f"template database restored from {dump.name}"]
    assert postgres.database_state("hangar_tpl_b1") == "template"
    postgres.create_from_template("hangar_env_a1", template="hangar_tpl_a1")
    postgres.create_from_template("hangar_env_b1", template="hangar_tpl_b1")
    assert rows(postgres, "hangar_env_b1") == rows(postgres, "hangar_env_a1") == [("fake0001", "default_pool", 128)]


def test_the_dump_is_named_for_its_key_postgres_major_and_airflow(runtime: Runtime):
    path = templates.dump_path(runtime, pg_major=18)
    assert path.name == f"{runtime.key}.template-v{templates.FORMAT}.pg18.airflow-3.3.2.dump"
    assert templates.dump_path(runtime, pg_major=17) != path
    other = Runtime(key="f" * 16, path=runtime.path.parent / ("f" * 16), airflow_version="3.3.2")
    assert templates.dump_path(other, pg_major=18) != path


@pytest.mark.parametrize("bad", ["garbage", "no alembic revision"])
def test_an_unusable_dump_is_migrated_past_and_replaced(postgres, runtime: Runtime, bad: str, caplog):
    fresh(postgres, "hangar_tpl_a2", "hangar_tpl_b2", "hangar_tpl_src")
    dump = templates.dump_path(runtime, pg_major=templates.server_major(postgres))
    if bad == "garbage":
        dump.write_bytes(b"PGDMP but not really")
    else:  # a valid dump of a database that was never migrated
        with postgres.admin() as cursor:
            cursor.execute("CREATE DATABASE hangar_tpl_src")
        postgres.dump("hangar_tpl_src", dump)

    with caplog.at_level(logging.WARNING, logger="hangar.runtime.templates"):
        postgres.ensure_template("hangar_tpl_a2", runtime=runtime, progress=lambda _: None)
    assert migrations(runtime) == 1
    assert "was not usable, migrating instead" in caplog.text
    assert postgres.database_state("hangar_tpl_a2") == "template"
    assert rows(postgres, "hangar_tpl_a2") == [("fake0001", "default_pool", 128)]

    postgres.ensure_template("hangar_tpl_b2", runtime=runtime, progress=lambda _: None)
    assert migrations(runtime) == 1  # the migration replaced the dump with a good one
    assert rows(postgres, "hangar_tpl_b2") == [("fake0001", "default_pool", 128)]


def test_a_dump_that_cannot_be_saved_leaves_a_good_template(postgres, runtime: Runtime, caplog):
    fresh(postgres, "hangar_tpl_a3")
    dump = templates.dump_path(runtime, pg_major=templates.server_major(postgres))
    (dump / "in-the-way").mkdir(parents=True)  # a folder where the dump would go
    with caplog.at_level(logging.WARNING, logger="hangar.runtime.templates"):
        postgres.ensure_template("hangar_tpl_a3", runtime=runtime, progress=lambda _: None)
    assert "could not save template dump" in caplog.text
    assert postgres.database_state("hangar_tpl_a3") == "template"
    assert not list(dump.parent.glob(".*.tmp"))
