"""--metadata-db-url: an environment on an external PostgreSQL (the machine's server on 5432)."""
from __future__ import annotations

import os
import uuid

import pytest

from tests.e2e.harness import ControlPlane


def _admin():
    import psycopg2

    try:
        connection = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=3)
    except psycopg2.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL on 127.0.0.1:5432 is required in CI and unreachable: {exc}")
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432 ({exc}); start one to run this test")
    connection.autocommit = True
    return connection


def test_environment_on_external_postgres(plane: ControlPlane, dags) -> None:
    database = f"hangar_ext_{uuid.uuid4().hex[:8]}"
    admin = _admin()
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {database}")
    try:
        url = f"postgresql://postgres@127.0.0.1:5432/{database}"
        env = plane.create("external", dags, "--metadata-db-url", url)
        assert env["status"] == "AVAILABLE"
        assert env["spec"]["external_metadata_db"] is True
        assert url not in plane.cli("env", "get", "external", "--json").stdout
        assert plane.airflow("external").run_dag("hello_taskflow") == "success"
        with admin.cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM pg_database WHERE datname = '{database}'")
            assert cursor.fetchone()
        import psycopg2

        with psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=database) as db, db.cursor() as c:
            c.execute("SELECT count(*) FROM dag_run WHERE dag_id = 'hello_taskflow'")
            assert c.fetchone()[0] == 1
        plane.delete("external")
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.close()
