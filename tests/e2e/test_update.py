"""Updates store a new revision and apply it; a failed update leaves the old revision running."""
from __future__ import annotations

import json

from tests.e2e.harness import ControlPlane


def test_update_applies_and_failed_update_keeps_the_old_revision(plane: ControlPlane, dags, tmp_path) -> None:
    created = plane.create("upd", dags)
    first_pids = {c["name"]: c["pid"] for c in created["components"]}
    # a configuration-only change reaches every component
    result = plane.cli("env", "update", "upd", "--config", "core.default_task_retries=1", "--wait", "--json")
    env = json.loads(result.stdout)
    assert env["revision"] == 2 and env["status"] == "AVAILABLE"
    assert all(c["pid"] != first_pids[c["name"]] for c in env["components"])
    result = plane.cli("env", "update", "upd", "--env", "TEAM=blue", "--config", "core.default_task_retries=1",
                       "--wait", "--json")
    env = json.loads(result.stdout)
    assert env["status"] == "AVAILABLE"
    assert env["revision"] == 3 and env["running_revision"] == 3 and env["last_good_revision"] == 3
    assert env["spec"]["environment_variables"] == {"TEAM": "blue"}
    assert env["last_update"]["status"] == "SUCCESS"
    pids_before = {c["name"]: c["pid"] for c in env["components"]}

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("hangar-no-such-package-xyz==1.0\n")
    failed = plane.cli("env", "update", "upd", "--requirements", str(requirements), "--wait", check=False)
    assert failed.returncode != 0
    env = plane.get("upd")
    assert env["status"] == "AVAILABLE"  # the old revision serves on; the update's failure is in last_update
    assert env["revision"] == 4 and env["running_revision"] == 3
    assert env["last_update"]["status"] == "FAILED"
    assert "hangar-no-such-package-xyz" in env["last_update"]["error"]["message"]
    # nothing was restarted: the previous revision kept serving
    assert {c["name"]: c["pid"] for c in env["components"]} == pids_before
    assert plane.airflow("upd").run_dag("hello_taskflow") == "success"
    plane.cli("env", "delete", "upd", "--wait")


def test_component_that_cannot_start_fails_the_create_with_its_log(plane: ControlPlane, dags) -> None:
    # an invalid value that only the triggerer reads: it exits at every start until FATAL
    result = plane.cli("env", "create", "fatal", "--dags", str(dags), "--config", "triggerer.capacity=lots",
                       "--wait", check=False)
    assert result.returncode != 0
    env = plane.get("fatal")
    assert env["status"] == "CREATE_FAILED"
    error = env["last_update"]["error"]
    assert error["code"] == "COMPONENT_FAILED"
    assert "triggerer is FATAL" in error["message"] and "triggerer log" in error["message"]
    plane.cli("env", "delete", "fatal", "--wait")
