"""A create whose component cannot start fails with the component's log (updates: test_update_failures)."""
from __future__ import annotations


from tests.e2e.harness import ControlPlane


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
    plane.delete("fatal")
