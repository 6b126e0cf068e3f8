"""Updates of every kind while a DAG runs: no task is killed, each update takes its own path.

The `relay` DAG is a chain of tasks that each wait for a release file of their own (or
the run's): it runs across all seven updates. After each update the test releases the
task that is running, so every scheduler an update replaced finishes (drains) the task it
started while its successor starts the next; the run's release file lets the rest go once
the last update is AVAILABLE. Each kind of update is applied once (DAGs-only three times,
as it restarts nothing; an environment variable together with a core option, as both restart
every component); removing a requirement is shown by its plan, since applying it takes the
same runtime path as adding one.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.e2e.harness import ADDED_REQUIREMENT, ControlPlane, wait_for

RELAY = '''
import os
import time

import pendulum

try:
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2
    from airflow.decorators import dag, task


@task
def hop(marker: str, ti=None) -> None:
    # a safety limit only: the test releases every hop long before it
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and not (os.path.exists(marker) or os.path.exists(f"{marker}.{ti.task_id}")):
        time.sleep(0.5)


@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def relay():
    previous = None
    for i in range(HOPS):
        current = hop.override(task_id=f"hop_{i}", retries=0)(marker="{{ dag_run.conf['marker'] }}")
        if previous is not None:
            previous >> current
        previous = current


relay()
'''.replace("HOPS", "9")


def _update(plane: ControlPlane, name: str, *args: str, run: tuple[str, Path]) -> dict:
    """Apply an update, then release the relay task that is running (a replaced scheduler drains it)."""
    env = json.loads(plane.cli("env", "update", name, *args, "--wait", "--json").stdout)
    assert env["status"] == "AVAILABLE" and env["last_update"]["status"] == "SUCCESS", env["last_update"]
    assert env["running_revision"] == env["revision"]
    run_id, marker = run
    tis = plane.airflow(name).request("GET", f"/dags/relay/dagRuns/{run_id}/taskInstances", params={"limit": 100})
    for ti in tis.json()["task_instances"]:
        if ti["state"] == "running":
            Path(f"{marker}.{ti['task_id']}").write_text("go")
    return env


def _failures(airflow, run_id: str) -> dict:
    """The states of the run's task instances, with the log of each that did not succeed."""
    tis = airflow.request("GET", f"/dags/relay/dagRuns/{run_id}/taskInstances", params={"limit": 100}).json()
    report = {}
    for ti in tis.get("task_instances", []):
        if ti["state"] not in ("success", "running", None, "scheduled", "queued"):
            log = airflow.request("GET", f"/dags/relay/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/"
                                  f"{max(ti['try_number'], 1)}")
            report[ti["task_id"]] = (ti["state"], log.text[-3000:])
    return report


def _pids(env: dict) -> dict[str, int]:
    return {c["name"]: c["pid"] for c in env["components"]}


def test_updates_of_every_kind_while_a_dag_runs(plane: ControlPlane, dags: Path, tmp_path: Path) -> None:
    (dags / "relay.py").write_text(RELAY)
    other = tmp_path / "dags2"
    shutil.copytree(dags, other)
    (other / "second.py").write_text((dags / "hello_taskflow.py").read_text().replace("hello_taskflow", "second"))
    with_six = tmp_path / "with-inflection.txt"
    with_six.write_text(f"{ADDED_REQUIREMENT}\n")  # inflection, whose runtime test_mwaa may have built
    marker = tmp_path / "release"

    env = plane.create("relay", dags)
    airflow = plane.airflow("relay")
    airflow.wait_for_dag("relay")
    assert airflow.request("PATCH", "/dags/relay", json={"is_paused": False}).status_code == 200
    response = airflow.request("POST", "/dags/relay/dagRuns", json={"logical_date": None, "conf": {"marker": str(marker)}})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    run = (run_id, marker)
    wait_for(lambda: airflow.request("GET", f"/dags/relay/dagRuns/{run_id}/taskInstances/hop_0").json().get("state")
             == "running", timeout=180, what="the first relay task to run")

    before = _pids(env)
    # 1. DAGs only: the DAGs link moves, nothing restarts, the new DAG appears
    plan = json.loads(plane.cli("env", "update", "relay", "--dags", str(other), "--dry-run", "--json").stdout)
    assert plan["kind"] == "dags" and plan["restart"] == []
    env = _update(plane, "relay", "--dags", str(other), run=run)
    assert _pids(env) == before
    plane.airflow("relay").wait_for_dag("second", timeout=60)
    # 2. a scheduler option: only the scheduler is replaced (the old one drains the running task)
    plan = json.loads(plane.cli("env", "update", "relay", "--config", "scheduler.task_queued_timeout=601",
                                "--dry-run", "--json").stdout)
    assert plan["kind"] == "config" and plan["restart"] == ["scheduler"]
    env = _update(plane, "relay", "--config", "scheduler.task_queued_timeout=601", run=run)
    after = _pids(env)
    assert after["scheduler"] != before["scheduler"]
    assert {n: p for n, p in after.items() if n != "scheduler"} == {n: p for n, p in before.items() if n != "scheduler"}
    # 3. a requirement added: a new runtime, checked, then switched to
    plan = json.loads(plane.cli("env", "update", "relay", "--requirements", str(with_six), "--dry-run", "--json").stdout)
    assert plan["kind"] == "runtime"
    assert any(p["name"] == "inflection" and p["new"] and not p["old"] for p in plan["packages"]), plan["packages"]
    env = _update(plane, "relay", "--requirements", str(with_six), run=run)
    # 4. a triggerer option: only the triggerer
    before = _pids(env)
    env = _update(plane, "relay", "--config", "triggerer.capacity=999", run=run)
    changed = {n for n, p in _pids(env).items() if before[n] != p}
    assert changed == {"triggerer", "scheduler"}  # the scheduler option of update 2 was left out of this set
    # 5. DAGs only, back to the first folder
    env = _update(plane, "relay", "--dags", str(dags), run=run)
    # the requirement removed would go back to a runtime without it: the plan says so
    plan = json.loads(plane.cli("env", "update", "relay", "--no-requirements", "--dry-run", "--json").stdout)
    assert plan["kind"] == "runtime"
    assert any(p["name"] == "inflection" and p["old"] and not p["new"] for p in plan["packages"]), plan["packages"]
    # 6. an environment variable and a core option read by every component: every component
    # (all but the web server together, then it)
    before = _pids(env)
    env = _update(plane, "relay", "--env", "TEAM=blue", "--config", "core.default_task_retries=0", run=run)
    assert all(p != before[n] for n, p in _pids(env).items())
    # 7. DAGs only again
    before = _pids(env)
    env = _update(plane, "relay", "--dags", str(other), run=run)
    assert _pids(env) == before
    assert env["revision"] == 8

    airflow = plane.airflow("relay")
    state = airflow.run_state("relay", run_id)
    assert state == "running", f"the run should still be going after the seven updates: {_failures(airflow, run_id)}"
    marker.write_text("go")
    airflow = plane.airflow("relay")
    assert airflow.wait_for_run("relay", run_id, timeout=600) == "success"
    tis = airflow.request("GET", f"/dags/relay/dagRuns/{run_id}/taskInstances", params={"limit": 100}).json()
    odd = {ti["task_id"]: (ti["state"], ti["try_number"], ti.get("start_date"), ti.get("end_date"), ti.get("hostname"))
           for ti in tis["task_instances"] if ti["state"] != "success" or ti["try_number"] != 1}
    assert len(tis["task_instances"]) == 9 and not odd, odd

    history = json.loads(plane.cli("env", "history", "relay", "--json").stdout)
    assert [h["revision"] for h in history] == list(range(1, 9))
    assert all(h["status"] == "APPLIED" for h in history)
    assert history[-1]["running"] and history[-1]["last_good"]
    assert any("TEAM" in line for line in history[6]["changes"])  # revision 7: update 6
    plane.discard("relay")
