"""Environment database roles on a real embedded PostgreSQL listening on loopback.

The server runs with Hangar's pg_hba.conf: postgres only over the socket (the control plane's
user, mapped), every other role over TCP with its password and to its own database only."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psycopg2
import pytest

from hangar.runtime.embedded_postgres import EmbeddedPostgres
from hangar.runtime.pg_clients import libpq_url


@pytest.fixture(scope="module")
def server():
    # not under pytest's 0700 basetemp: as root, the embedded PostgreSQL runs as its own user
    home = Path(tempfile.mkdtemp(prefix="hangar-pga-"))
    home.chmod(0o755)
    postgres = EmbeddedPostgres(home / "pgdata", isolate=True)
    postgres.start()
    yield postgres
    postgres.stop()
    shutil.rmtree(home, ignore_errors=True)


def make_database(server: EmbeddedPostgres, name: str) -> None:
    """A database as a template copy leaves it: postgres owns it and everything in it."""
    server.drop(name)
    with server.admin() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    with server.connect(name) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TYPE state AS ENUM ('queued', 'running')")
        cursor.execute("CREATE TABLE task (id serial PRIMARY KEY, s state)")
        cursor.execute("CREATE VIEW running AS SELECT id FROM task WHERE s = 'running'")
        cursor.execute("CREATE SEQUENCE loose")
    connection.close()


def test_a_role_owns_its_database_and_reaches_it_over_loopback_only_with_its_password(server):
    make_database(server, "hangar_env_a")
    server.ensure_role("hangar_env_a", password="pw-of-a")
    url = libpq_url(server.role_url("hangar_env_a", password="pw-of-a"))
    assert url.startswith(f"postgresql://hangar_env_a:pw-of-a@127.0.0.1:{server.port}/")
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        # what an Airflow migration does as the owner
        cursor.execute("INSERT INTO task (s) VALUES ('running')")
        cursor.execute("ALTER TABLE task ADD COLUMN note text")
        cursor.execute("SELECT count(*) FROM running")
        assert cursor.fetchone() == (1,)
        cursor.execute("SELECT nextval('loose')")
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        assert cursor.fetchone() == (False,)
    connection.close()
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(url.replace("pw-of-a", "wrong"))


def test_postgres_and_other_databases_are_refused_over_tcp(server):
    make_database(server, "hangar_env_b")
    server.ensure_role("hangar_env_b", password="pw-of-b")
    make_database(server, "hangar_env_c")
    server.ensure_role("hangar_env_c", password="pw-of-c")
    port = server.port
    with pytest.raises(psycopg2.OperationalError, match="rejects connection"):
        psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="hangar_env_b")
    for database in ("hangar_env_c", "postgres"):  # b's role, another database
        with pytest.raises(psycopg2.OperationalError, match="rejects connection"):
            psycopg2.connect(host="127.0.0.1", port=port, user="hangar_env_b", password="pw-of-b", dbname=database)


def test_a_restored_database_goes_back_to_its_role(server, tmp_path):
    make_database(server, "hangar_env_d")
    server.ensure_role("hangar_env_d", password="pw-of-d")
    dump = Path(tempfile.mkdtemp(prefix="hangar-pga-dump-")) / "d.dump"
    dump.parent.chmod(0o755)
    server.dump("hangar_env_d", dump)
    server.restore("hangar_env_d", dump)  # pg_restore --no-owner: postgres owns what it made
    url = libpq_url(server.role_url("hangar_env_d", password="pw-of-d"))
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("ALTER TABLE task ADD COLUMN again text")
        cursor.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()")
        assert cursor.fetchone() == ("hangar_env_d",)
    connection.close()
    shutil.rmtree(dump.parent, ignore_errors=True)


def test_dropping_the_role_after_its_database_leaves_nothing(server):
    make_database(server, "hangar_env_e")
    server.ensure_role("hangar_env_e", password="pw-of-e")
    server.drop("hangar_env_e")
    server.drop_role("hangar_env_e")
    with server.admin() as cursor:
        cursor.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'hangar_env_e'")
        assert cursor.fetchone() == (0,)
