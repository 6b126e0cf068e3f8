"""The same create-and-run on Airflow 2.11.2: a webserver instead of an api-server."""
from __future__ import annotations

import httpx

from tests.e2e.harness import ControlPlane


def test_airflow_2_create_and_run(plane: ControlPlane, dags) -> None:
    env = plane.create("legacy", dags, "--airflow-version", "2.11.2")
    assert env["status"] == "AVAILABLE", env
    assert env["airflow_version"] == "2.11.2"
    assert {c["name"] for c in env["components"]} == {"webserver", "scheduler", "triggerer"}
    assert httpx.get(f"{env['webserver_url']}/health", timeout=10).status_code == 200
    airflow = plane.airflow("legacy")
    # Airflow 2's REST API refuses requests without the Hangar token
    assert httpx.get(f"{airflow.api}/dags", timeout=10).status_code in (401, 403)
    assert airflow.run_dag("hello_taskflow") == "success"
    plane.cli("env", "delete", "legacy", "--wait")
