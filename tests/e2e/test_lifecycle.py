"""Create, run, inspect and delete real Airflow 3 environments through the CLI.

Three environments are created at once through `hangar env create --wait`: one has a DAG
with a syntax error from the start, and one a component that cannot start, so its create
fails with the component's log. A fourth, created through the API beside them, has its own
log level per module. The two others run DAGs at the same time, each sees only its
own runs, and the first is deleted through the CLI with everything it owned.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import psutil
import pytest

from tests.e2e.conftest import private_folder
from tests.e2e.harness import EXAMPLES, ControlPlane, wait_for

BROKEN = "from airflow.sdk import dag\n\ndef oops(:\n    pass\n"


def _pids(env: dict) -> dict[str, int]:
    return {c["name"]: c["pid"] for c in env["components"]}


@pytest.fixture(scope="module")
def creates(plane: ControlPlane):
    """Three `hangar env create --wait` at once: twin-a with the example DAGs, twin-b with
    hello_taskflow and a DAG that does not parse, and `fatal`, whose triggerer cannot start.
    Yields each create's exit code."""
    folder = private_folder("hangar-e2e-twins-")
    shutil.copytree(EXAMPLES, folder / "a", ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "b").mkdir()
    (folder / "b" / "hello_taskflow.py").write_text((EXAMPLES / "hello_taskflow.py").read_text())
    (folder / "b" / "broken.py").write_text(BROKEN)
    cli = [sys.executable, "-m", "hangar.cli.main", "env", "create"]
    started = {
        "twin-a": subprocess.Popen([*cli, "twin-a", "--dags", str(folder / "a"), "--wait"], env=plane.env),
        "twin-b": subprocess.Popen([*cli, "twin-b", "--dags", str(folder / "b"), "--wait"], env=plane.env),
        # an invalid value that only the triggerer reads: it exits at every start until FATAL
        "fatal": subprocess.Popen([*cli, "fatal", "--dags", str(folder / "a"), "--config", "triggerer.capacity=lots",
                                   "--wait"], env=plane.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    }
    # per-module log levels (MWAA's LoggingConfiguration), given through the API
    response = plane.api("POST", "/api/v1/environments", json={"name": "levels", "dags": str(folder / "a"), "logging": {
        "dag_processing": {"log_level": "DEBUG"}, "scheduler": {"log_level": "WARNING"},
        "worker": {"log_level": "WARNING"}, "task": {"log_level": "WARNING"}}})
    assert response.status_code == 201, response.text
    yield {name: process.wait(timeout=900) for name, process in started.items()}
    for name in [*started, "levels"]:
        plane.discard(name)
    plane.wait_discarded()  # the DAGs folders go next
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def twins(creates: dict[str, int]):
    assert creates["twin-a"] == 0 and creates["twin-b"] == 0, creates
    return "twin-a", "twin-b"


def test_a_component_that_cannot_start_fails_the_create_with_its_log(plane: ControlPlane, creates) -> None:
    assert creates["fatal"] != 0
    env = plane.get("fatal")
    assert env["status"] == "CREATE_FAILED"
    error = env["last_update"]["error"]
    assert error["code"] == "COMPONENT_FAILED"
    assert "triggerer is FATAL" in error["message"] and "triggerer log" in error["message"]


def test_two_environments_run_dags_at_once(plane: ControlPlane, twins) -> None:
    a, b = (plane.get(name) for name in twins)
    assert a["webserver_url"] != b["webserver_url"]
    fa, fb = (plane.airflow(name) for name in twins)
    run_a, run_b = fa.trigger("hello_taskflow"), fb.trigger("hello_taskflow")
    assert fa.wait_for_run("hello_taskflow", run_a) == "success"
    assert fb.wait_for_run("hello_taskflow", run_b) == "success"
    # each environment sees only its own run
    assert len(fa.request("GET", "/dags/hello_taskflow/dagRuns").json()["dag_runs"]) == 1
    assert len(fb.request("GET", "/dags/hello_taskflow/dagRuns").json()["dag_runs"]) == 1


def test_dag_with_syntax_error_keeps_environment_available(plane: ControlPlane, twins) -> None:
    name = twins[1]
    assert plane.get(name)["status"] == "AVAILABLE"
    airflow = plane.airflow(name)
    errors = wait_for(
        lambda: airflow.request("GET", "/importErrors").json()["import_errors"], timeout=180,
        what="the import error to show in Airflow's API",
    )
    assert any(e["filename"].endswith("broken.py") and "SyntaxError" in e["stack_trace"] for e in errors)
    assert airflow.run_dag("hello_taskflow") == "success"
    assert plane.get(name)["status"] == "AVAILABLE"


def test_each_component_logs_at_its_own_level_when_forked(plane: ControlPlane, creates) -> None:
    """The components are forked from the environment's fork server, which imported Airflow under
    the default level; each still logs at the level its modules ask for: the dag-processor at
    DEBUG, the scheduler and triggerer (scheduler, worker and task at WARNING) nothing below."""
    env = plane.wait("levels")
    assert env["status"] == "AVAILABLE", env
    parents = {psutil.Process(c["pid"]).ppid() for c in env["components"]}
    assert len(parents) == 1 and "hangar_airflow.forkserver" in " ".join(psutil.Process(parents.pop()).cmdline())
    logs = plane.home / "environments" / _env_id(plane, "levels") / "logs" / "components"

    def lines(component: str, level: str) -> int:
        return len(re.findall(rf"\[{level}\s*\]", (logs / f"{component}.log").read_text(errors="replace")))

    wait_for(lambda: lines("dag-processor", "debug"), timeout=60, what="debug lines from the dag-processor")
    assert lines("scheduler", "debug") == lines("scheduler", "info") == 0
    assert lines("triggerer", "debug") == lines("triggerer", "info") == 0
    assert lines("api-server", "debug") == 0 and lines("api-server", "info") > 0  # the webserver module: INFO


def test_create_run_taskflow_dag_and_delete(plane: ControlPlane, twins) -> None:
    name = twins[0]
    env = json.loads(plane.cli("env", "get", name, "--json").stdout)
    assert env["status"] == "AVAILABLE"
    assert env["airflow_version"] == "3.3.2"
    assert env["webserver_url"].startswith("http://127.0.0.1:")
    assert env["last_update"]["status"] == "SUCCESS"
    assert {c["name"] for c in env["components"]} == {"api-server", "scheduler", "dag-processor", "triggerer"}
    assert all(c["state"] == "RUNNING" for c in env["components"])

    airflow = plane.airflow(name)
    assert airflow.run_dag("hello_taskflow") == "success"

    # the token is an Admin token for at least an hour
    token = json.loads(plane.cli("env", "token", name, "--json").stdout)
    assert token["role"] == "Admin"

    events = json.loads(plane.cli("env", "events", name, "--json").stdout)
    assert [e["status"] for e in events] == ["CREATING", "AVAILABLE"]

    pids = _pids(env)
    database = f"hangar_env_{_env_id(plane, name).replace('-', '')}"
    root = plane.home / "environments" / _env_id(plane, name)
    assert root.exists()
    plane.cli("env", "delete", name, "--wait")
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids.values())
    assert not root.exists()
    assert database not in _databases(plane)
    result = plane.cli("env", "get", name, check=False)
    assert result.returncode != 0 and "does not exist" in result.stderr


def _env_id(plane: ControlPlane, name: str) -> str:
    import sqlite3

    with sqlite3.connect(plane.home / "state" / "hangar.db") as db:
        return db.execute("SELECT id FROM environments WHERE name = ? AND status != 'DELETED'", (name,)).fetchone()[0]


def _databases(plane: ControlPlane) -> set[str]:
    connection = plane.postgres()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database")
            return {row[0] for row in cursor.fetchall()}
    finally:
        connection.close()
