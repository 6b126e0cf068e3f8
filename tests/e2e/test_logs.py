"""`hangar env logs` on a real environment: the scheduler's own lines with their levels, the
control plane's lines about the environment, filters by level and time, a line followed as it
comes, bad filters refused with the cause, and no secret of the environment in any log."""
from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import uuid
from datetime import datetime, timezone

from tests.e2e.harness import ControlPlane, wait_for

LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def _logs(plane: ControlPlane, name: str, *args: str) -> list[dict]:
    out = plane.cli("env", "logs", name, "--json", *args).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_component_logs_filter_and_follow(plane: ControlPlane, shared_env: str) -> None:
    lines = wait_for(lambda: (found := _logs(plane, shared_env, "--component", "scheduler")) and
                     any("Starting the scheduler" in e["message"] for e in found) and found,
                     timeout=60, what="the scheduler's start in its log")
    assert {e["component"] for e in lines} == {"scheduler"}
    assert all(e["time"].endswith("Z") and e["level"] in LEVELS for e in lines)
    assert [e["time"] for e in lines] == sorted(e["time"] for e in lines)
    # the control plane's own lines about the environment: its create, its components' states
    own = _logs(plane, shared_env, "--component", "hangar")
    assert any("scheduler is RUNNING" in e["message"] for e in own), own[-5:]
    assert any("CREATING -> AVAILABLE" in e["message"] for e in own), own[-5:]

    warnings = _logs(plane, shared_env, "--level", "WARNING")
    assert all(LEVELS.index(e["level"]) >= LEVELS.index("WARNING") for e in warnings)
    assert len(warnings) < len(_logs(plane, shared_env, "--tail", "100000"))

    cut = lines[len(lines) // 2]["time"]
    since = _logs(plane, shared_env, "--component", "scheduler", "--since", cut, "--tail", "100000")
    assert since and all(e["time"] >= cut for e in since) and len(since) < len(lines)
    assert _logs(plane, shared_env, "--since", "2999-01-01T00:00:00Z") == []

    # --follow: a DAG run with a run id of its own shows up in the scheduler's lines as it happens
    run_id = f"follow-{uuid.uuid4().hex[:8]}"
    follower = subprocess.Popen(
        [sys.executable, "-m", "hangar.cli.main", "env", "logs", shared_env, "--follow", "--tail", "0",
         "--grep", run_id, "--json"], env=plane.env, stdout=subprocess.PIPE, text=True)
    seen: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [seen.put(line) for line in follower.stdout], daemon=True).start()
    try:
        airflow = plane.airflow(shared_env)
        airflow.wait_for_dag("hello_taskflow")
        assert airflow.request("PATCH", "/dags/hello_taskflow", json={"is_paused": False}).status_code == 200
        triggered = datetime.now(timezone.utc)
        answer = airflow.request("POST", "/dags/hello_taskflow/dagRuns", json={"logical_date": None, "dag_run_id": run_id})
        assert answer.status_code == 200, answer.text
        first = json.loads(seen.get(timeout=120))
        assert run_id in first["message"]
        print(f"followed line: written {first['time']}, run triggered {triggered.isoformat()}")
    finally:
        follower.terminate()
        follower.wait(10)


def test_bad_filters_are_refused_with_the_cause(plane: ControlPlane, shared_env: str) -> None:
    for args, says in [
        (("--since", "yesterday"), "since 'yesterday' is neither a duration back from now"),
        (("--level", "LOUD"), "unknown level 'LOUD'"),
        (("--component", "sheduler"), "unknown component 'sheduler'"),
    ]:
        result = plane.cli("env", "logs", shared_env, *args, check=False)
        assert result.returncode == 1 and says in result.stderr, (args, result.stderr)
    result = plane.cli("env", "logs", "no-such-env", check=False)
    assert result.returncode == 1 and "environment 'no-such-env' does not exist" in result.stderr


def test_no_secret_of_the_environment_is_in_any_log(plane: ControlPlane, shared_env: str) -> None:
    """Every log Hangar keeps or writes: the stored logs, the components' raw output, the
    control plane's own log, Airflow's task logs."""
    secrets = {name: value for name, value in plane.secrets(shared_env).items() if len(value) >= 6}
    assert secrets
    env_root = plane.home / "environments" / plane.env_id(shared_env)
    files = [*(plane.home / "logs").rglob("*.log"), *(env_root / "logs").rglob("*"), plane.log,
             *plane.home.glob("*.log")]
    checked = 0
    for path in files:
        if path.is_file():
            text = path.read_text(errors="replace")
            checked += 1
            leaked = [name for name, value in secrets.items() if value in text]
            assert not leaked, f"{leaked} in {path}"
    assert checked > 5
