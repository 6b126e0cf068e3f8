"""In-place Airflow upgrades: snapshot, `airflow db migrate`, switch; history survives; a
failed migration restores the snapshot and the old runtime comes back. The 2.11.2
environment also proves that Airflow 2 is created and runs DAGs before it is upgraded."""
from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.e2e.harness import ControlPlane


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


def test_upgrade_3_2_to_3_3_keeps_history_and_a_failed_downgrade_restores_the_snapshot(
    plane: ControlPlane, dags: Path
) -> None:
    plane.create("up32", dags, "--airflow-version", "3.2.2")
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
    plane.delete("up32")


def test_airflow_2_create_and_run_then_upgrade_to_3_3_keeps_history(plane: ControlPlane, dags: Path) -> None:
    env = plane.create("up211", dags, "--airflow-version", "2.11.2")
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
    plane.delete("up211")
