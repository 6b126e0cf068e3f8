"""Bad updates are refused or fail with the cause named, and the running revision serves on.

Each failing update must leave the environment AVAILABLE on its previous revision with
the same processes, and `last_update` FAILED with an error that names the cause.
"""
from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.e2e.harness import ControlPlane, wait_for
from tests.e2e.test_preflight import broken_requirements


def _pids(env: dict) -> dict[str, int]:
    return {c["name"]: c["pid"] for c in env["components"]}


@pytest.fixture(scope="module")
def serving(plane: ControlPlane, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("dags")
    from tests.e2e.harness import EXAMPLES

    (folder / "hello_taskflow.py").write_text((EXAMPLES / "hello_taskflow.py").read_text())
    plane.create("fails", folder)
    yield "fails"
    plane.discard("fails")


def _fails(plane: ControlPlane, name: str, *args: str, code: str, text: str) -> dict:
    before = plane.get(name)
    result = plane.cli("env", "update", name, *args, "--wait", check=False)
    assert result.returncode != 0, result.stdout
    env = plane.get(name)
    assert env["status"] == "AVAILABLE", env["status_reason"]
    assert env["running_revision"] == before["running_revision"]
    assert env["last_update"]["status"] == "FAILED"
    error = env["last_update"]["error"]
    assert error["code"] == code, error
    assert text in error["message"], error["message"]
    assert _pids(env) == _pids(before)  # nothing switched: the previous revision kept serving
    return env


def test_updates_apply_and_a_failed_update_keeps_the_old_revision(plane: ControlPlane, serving: str, tmp_path) -> None:
    created = plane.get(serving)
    first = created["revision"]
    # a core option and an environment variable reach every component
    result = plane.cli("env", "update", serving, "--env", "TEAM=blue", "--config", "core.default_task_retries=1",
                       "--wait", "--json")
    env = json.loads(result.stdout)
    assert env["status"] == "AVAILABLE"
    assert all(c["pid"] != _pids(created)[c["name"]] for c in env["components"])
    assert env["revision"] == env["running_revision"] == env["last_good_revision"] == first + 1
    assert env["spec"]["environment_variables"] == {"TEAM": "blue"}
    assert env["last_update"]["status"] == "SUCCESS"
    pids_before = _pids(env)

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("hangar-no-such-package-xyz==1.0\n")
    failed = plane.cli("env", "update", serving, "--requirements", str(requirements), "--wait", check=False)
    assert failed.returncode != 0
    env = plane.get(serving)
    assert env["status"] == "AVAILABLE"  # the old revision serves on; the update's failure is in last_update
    assert env["revision"] == first + 2 and env["running_revision"] == first + 1
    assert env["last_update"]["status"] == "FAILED"
    assert "hangar-no-such-package-xyz" in env["last_update"]["error"]["message"]
    # nothing was restarted: the previous revision kept serving
    assert _pids(env) == pids_before
    assert plane.airflow(serving).run_dag("hello_taskflow") == "success"


def test_a_package_that_fails_on_import(plane: ControlPlane, serving: str, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    # the runtime test_preflight builds for the same requirements: brokenpkg beside inflection
    requirements.write_text(broken_requirements()[1])
    _fails(plane, serving, "--requirements", str(requirements), code="REQUIREMENT_IMPORT_FAILED",
           text="brokenpkg needs BROKENPKG_LICENSE to be set")


def test_a_plugin_that_raises_on_import(plane: ControlPlane, serving: str, tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "exploding.py").write_text("raise ValueError('the exploding plugin exploded')\n")
    _fails(plane, serving, "--plugins", str(plugins), code="PLUGIN_IMPORT_FAILED", text="the exploding plugin exploded")


def test_a_startup_script_that_fails_and_one_that_hangs(plane: ControlPlane, serving: str, tmp_path: Path) -> None:
    failing = tmp_path / "fail.sh"
    failing.write_text("echo preparing the environment\necho 'license server unreachable' >&2\nexit 3\n")
    env = _fails(plane, serving, "--startup-script", str(failing), code="STARTUP_SCRIPT_FAILED", text="code 3")
    assert "license server unreachable" in env["last_update"]["error"]["message"]
    hanging = tmp_path / "hang.sh"
    hanging.write_text("sleep 1000\n")
    _fails(plane, serving, "--startup-script", str(hanging), code="STARTUP_SCRIPT_TIMED_OUT", text="within 8 s")


def test_a_startup_script_runs_before_each_component_and_reserved_variables_are_reset(
    plane: ControlPlane, serving: str, tmp_path: Path
) -> None:
    script = tmp_path / "startup.sh"
    script.write_text("export TEAM_FROM_SCRIPT=platform\nexport AIRFLOW__CORE__EXECUTOR=SequentialExecutor\n")
    env = json.loads(plane.cli("env", "update", serving, "--startup-script", str(script), "--wait", "--json").stdout)
    assert env["status"] == "AVAILABLE" and env["last_update"]["status"] == "SUCCESS"
    logs = [p.read_text() for p in (plane.home / "environments").glob("*/logs/components/*.log")]
    assert any("reserved variable AIRFLOW__CORE__EXECUTOR" in text for text in logs)
    assert plane.airflow(serving).run_dag("hello_taskflow") == "success"
    # the script stays: the tests below run with it, as a user's environment would


def test_blocked_key_and_unsupported_upgrade_paths_are_refused_at_once(plane: ControlPlane, serving: str) -> None:
    before = plane.get(serving)
    blocked = plane.cli("env", "update", serving, "--config", "core.executor=CeleryExecutor", check=False)
    assert blocked.returncode != 0 and "core.executor" in blocked.stderr + blocked.stdout
    down = plane.cli("env", "update", serving, "--airflow-version", "2.11.2", check=False)
    assert down.returncode != 0 and "2.11.2" in down.stderr + down.stdout
    older = plane.cli("env", "update", serving, "--airflow-version", "3.2.2", check=False)
    assert older.returncode != 0 and "allow" in (older.stderr + older.stdout).lower()
    after = plane.get(serving)
    assert after["revision"] == before["revision"] and _pids(after) == _pids(before)


def test_a_component_that_fails_after_the_switch_rolls_back(plane: ControlPlane, serving: str) -> None:
    # an invalid value that only the triggerer reads: the new triggerer exits at every start.
    # --config replaces the whole set, so the options earlier tests left are given again.
    before = plane.get(serving)
    kept = [arg for key, value in (before["spec"]["airflow_configuration_options"] or {}).items()
            for arg in ("--config", f"{key}={value}")]
    result = plane.cli("env", "update", serving, *kept, "--config", "triggerer.capacity=lots", "--wait", check=False)
    assert result.returncode != 0
    env = plane.get(serving)
    assert env["status"] == "AVAILABLE" and env["running_revision"] == before["running_revision"]
    assert env["last_update"]["status"] == "FAILED"
    assert env["last_update"]["error"]["code"] == "COMPONENT_FAILED"
    assert "triggerer" in env["last_update"]["error"]["message"]
    events = plane.events(serving)
    assert events[-2]["status"] == "ROLLING_BACK" and events[-1]["status"] == "AVAILABLE"
    # only the triggerer was replaced, twice; the others never stopped
    after = _pids(env)
    assert {n: p for n, p in after.items() if n != "triggerer"} == {n: p for n, p in _pids(before).items() if n != "triggerer"}
    assert plane.airflow(serving).run_dag("hello_taskflow") == "success"


def test_history_and_rollback_to_an_earlier_revision(plane: ControlPlane, serving: str) -> None:
    plane.cli("env", "update", serving, "--env", "STAGE=one", "--wait")
    history = json.loads(plane.cli("env", "history", serving, "--json").stdout)
    failed = [h for h in history if h["status"] == "FAILED"]
    assert failed and all(h["error"] for h in failed)
    assert history[-1]["status"] == "APPLIED" and history[-1]["running"]
    assert any("STAGE" in line for line in history[-1]["changes"])
    env = json.loads(plane.cli("env", "rollback", serving, "--to", "1", "--wait", "--json").stdout)
    assert env["status"] == "AVAILABLE" and env["last_update"]["status"] == "SUCCESS"
    assert env["revision"] == history[-1]["revision"] + 1 == env["running_revision"]
    assert env["spec"]["environment_variables"] == {}
    text = plane.cli("env", "history", serving).stdout
    assert f"revision {env['revision']}" in text and "running" in text


def test_control_plane_killed_in_the_middle_of_an_update_finishes_it(plane: ControlPlane, serving: str) -> None:
    # last in the module: it leaves the environment as a crash does, for no other test to inherit
    before = plane.get(serving)
    plane.cli("env", "update", serving, "--env", "AFTER_CRASH=1")
    wait_for(lambda: "replacing" in (plane.get(serving).get("status_reason") or ""), timeout=120,
             what="the update to start replacing components")
    plane.restart(signal.SIGKILL)
    env = plane.wait(serving)
    assert env["status"] == "AVAILABLE"
    assert env["revision"] == before["revision"] + 1
    # completed, or rolled back to the previous revision: never stuck in UPDATING
    assert env["running_revision"] in (before["revision"], before["revision"] + 1)
    assert plane.airflow(serving).run_dag("hello_taskflow") == "success"
