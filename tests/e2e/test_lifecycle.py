"""Create, run, inspect and delete real Airflow 3 environments through the CLI."""
from __future__ import annotations

import json
import subprocess

import psutil

from tests.e2e.harness import ControlPlane, wait_for


def _pids(env: dict) -> dict[str, int]:
    return {c["name"]: c["pid"] for c in env["components"]}


def test_create_run_taskflow_dag_and_delete(plane: ControlPlane, dags) -> None:
    env = plane.create("life", dags)
    assert env["status"] == "AVAILABLE"
    assert env["airflow_version"] == "3.3.2"
    assert env["webserver_url"].startswith("http://127.0.0.1:")
    assert env["last_update"]["status"] == "SUCCESS"
    assert {c["name"] for c in env["components"]} == {"api-server", "scheduler", "dag-processor", "triggerer"}
    assert all(c["state"] == "RUNNING" for c in env["components"])

    airflow = plane.airflow("life")
    assert airflow.run_dag("hello_taskflow") == "success"

    # the token is an Admin token for at least an hour
    token = json.loads(plane.cli("env", "token", "life", "--json").stdout)
    assert token["role"] == "Admin"

    events = json.loads(plane.cli("env", "events", "life", "--json").stdout)
    assert [e["status"] for e in events] == ["CREATING", "AVAILABLE"]

    pids = _pids(env)
    database = f"hangar_env_{_env_id(plane, 'life').replace('-', '')}"
    root = plane.home / "environments" / _env_id(plane, "life")
    assert root.exists()
    plane.cli("env", "delete", "life", "--wait")
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids.values())
    assert not root.exists()
    assert database not in _databases(plane)
    result = plane.cli("env", "get", "life", check=False)
    assert result.returncode != 0 and "does not exist" in result.stderr


def test_two_environments_run_dags_at_once(plane: ControlPlane, dags, tmp_path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "hello_taskflow.py").write_text((dags / "hello_taskflow.py").read_text())
    first = subprocess.Popen([*_cli(plane), "env", "create", "twin-a", "--dags", str(dags), "--wait"], env=plane.env)
    second = subprocess.Popen([*_cli(plane), "env", "create", "twin-b", "--dags", str(other), "--wait"], env=plane.env)
    assert first.wait(timeout=900) == 0 and second.wait(timeout=900) == 0
    a, b = plane.get("twin-a"), plane.get("twin-b")
    assert a["webserver_url"] != b["webserver_url"]
    fa, fb = plane.airflow("twin-a"), plane.airflow("twin-b")
    run_a, run_b = fa.trigger("hello_taskflow"), fb.trigger("hello_taskflow")
    assert fa.wait_for_run("hello_taskflow", run_a) == "success"
    assert fb.wait_for_run("hello_taskflow", run_b) == "success"
    # each environment sees only its own run
    assert len(fa.request("GET", "/dags/hello_taskflow/dagRuns").json()["dag_runs"]) == 1
    for name in ("twin-a", "twin-b"):
        plane.cli("env", "delete", name, "--wait")


def test_dag_with_syntax_error_keeps_environment_available(plane: ControlPlane, dags) -> None:
    (dags / "broken.py").write_text("from airflow.sdk import dag\n\ndef oops(:\n    pass\n")
    env = plane.create("broken", dags)
    assert env["status"] == "AVAILABLE"
    airflow = plane.airflow("broken")
    errors = wait_for(
        lambda: airflow.request("GET", "/importErrors").json()["import_errors"], timeout=180,
        what="the import error to show in Airflow's API",
    )
    assert any(e["filename"].endswith("broken.py") and "SyntaxError" in e["stack_trace"] for e in errors)
    assert airflow.run_dag("hello_taskflow") == "success"
    assert plane.get("broken")["status"] == "AVAILABLE"
    plane.cli("env", "delete", "broken", "--wait")


def _cli(plane: ControlPlane) -> list[str]:
    import sys

    return [sys.executable, "-m", "hangar.cli.main"]


def _env_id(plane: ControlPlane, name: str) -> str:
    import sqlite3

    with sqlite3.connect(plane.home / "state" / "hangar.db") as db:
        return db.execute("SELECT id FROM environments WHERE name = ? AND status != 'DELETED'", (name,)).fetchone()[0]


def _databases(plane: ControlPlane) -> set[str]:
    import psycopg2

    connection = psycopg2.connect(host=str(plane.home / "pgdata"), user="postgres", dbname="postgres")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database")
            return {row[0] for row in cursor.fetchall()}
    finally:
        connection.close()
