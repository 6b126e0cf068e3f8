"""In-place Airflow upgrades: snapshot, `airflow db migrate`, switch; history survives; a
failed migration restores the snapshot and the old runtime comes back. The 2.11.2
environment also proves that Airflow 2 is created and runs DAGs before it is upgraded.

Both environments are asked for before the first test, so the second is created while the
first test runs."""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import private_folder
from tests.e2e.harness import EXAMPLES, ControlPlane

VERSIONS = {"up32": "3.2.2", "up211": "2.11.2"}


@pytest.fixture(scope="module", autouse=True)
def requested(plane: ControlPlane) -> Iterator[None]:
    folder = private_folder("hangar-e2e-upgrades-")
    shutil.copytree(EXAMPLES, folder / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    for name, version in VERSIONS.items():
        response = plane.api("POST", "/api/v1/environments",
                             json={"name": name, "dags": str(folder / "dags"), "airflow_version": version})
        assert response.status_code == 201, response.text
    yield
    for name in VERSIONS:
        plane.discard(name)
    plane.wait_discarded()  # the DAGs folder goes next
    shutil.rmtree(folder, ignore_errors=True)


def _runs(plane: ControlPlane, name: str, dag_id: str) -> dict[str, str]:
    airflow = plane.airflow(name)
    response = airflow.request("GET", f"/dags/{dag_id}/dagRuns")
    assert response.status_code == 200, response.text
    return {run["dag_run_id"]: run["state"] for run in response.json()["dag_runs"]}


def _upgrade(plane: ControlPlane, name: str, version: str) -> dict:
    env = json.loads(plane.cli("env", "update", name, "--airflow-version", version, "--wait", "--json").stdout)
    assert env["status"] == "AVAILABLE" and env["last_update"]["status"] == "SUCCESS", env["last_update"]
    assert env["airflow_version"] == version and env["running_revision"] == env["revision"]
    events = plane.events(name)
    assert any(e["status"] == "CREATING_SNAPSHOT" for e in events)
    snapshots = json.loads(plane.cli("env", "snapshot", "list", name, "--json").stdout)
    assert any(s["kind"] == "pre-upgrade" for s in snapshots), snapshots
    return env


def test_upgrade_3_2_to_3_3_keeps_history_and_a_failed_downgrade_restores_the_snapshot(plane: ControlPlane) -> None:
    env = plane.wait("up32")
    assert env["status"] == "AVAILABLE" and env["airflow_version"] == "3.2.2", env
    airflow = plane.airflow("up32")
    run_id = airflow.trigger("hello_taskflow")
    assert airflow.wait_for_run("hello_taskflow", run_id) == "success"

    plan = json.loads(plane.cli("env", "update", "up32", "--airflow-version", "3.3.2", "--dry-run", "--json").stdout)
    assert plan["kind"] == "upgrade" and plan["airflow"] == "3.2.2 -> 3.3.2"
    _upgrade(plane, "up32", "3.3.2")
    assert _runs(plane, "up32", "hello_taskflow")[run_id] == "success"
    assert plane.airflow("up32").run_dag("hello_taskflow") == "success"

    # Airflow cannot take a database created on Airflow 3 back to 2.x: the migration fails,
    # the snapshot comes back and 3.3.2 serves again
    result = plane.cli("env", "update", "up32", "--airflow-version", "2.11.2", "--allow-downgrade", "--wait", check=False)
    assert result.returncode != 0
    env = plane.get("up32")
    assert env["status"] == "AVAILABLE" and env["airflow_version"] == "3.3.2"
    assert env["last_update"]["status"] == "FAILED"
    assert "downgrade" in env["last_update"]["error"]["message"]
    events = plane.events("up32")
    assert any(e["status"] == "ROLLING_BACK" for e in events)
    assert _runs(plane, "up32", "hello_taskflow")[run_id] == "success"
    assert plane.airflow("up32").run_dag("hello_taskflow") == "success"


def test_airflow_2_create_and_run_then_upgrade_to_3_3_keeps_history(plane: ControlPlane) -> None:
    env = plane.wait("up211")
    # Airflow 2.11.2 runs as it is: a webserver instead of an api-server
    assert env["status"] == "AVAILABLE", env
    assert env["airflow_version"] == "2.11.2"
    assert {c["name"] for c in env["components"]} == {"webserver", "scheduler", "triggerer"}
    assert httpx.get(f"{env['webserver_url']}/health", timeout=10).status_code == 200
    airflow = plane.airflow("up211")
    # Airflow 2's REST API refuses requests without the Hangar token
    assert httpx.get(f"{airflow.api}/dags", timeout=10).status_code in (401, 403)
    run_id = airflow.trigger("hello_taskflow")
    assert airflow.wait_for_run("hello_taskflow", run_id) == "success"

    _upgrade(plane, "up211", "3.3.2")
    assert _runs(plane, "up211", "hello_taskflow")[run_id] == "success"
    assert plane.airflow("up211").run_dag("hello_taskflow") == "success"
