"""Failures of components and of the control plane itself, with real processes."""
from __future__ import annotations

import json
import os
import re
import signal
import sqlite3

import psutil

from tests.e2e.harness import ControlPlane, wait_for
from tests.e2e.receivers import Receiver


def _component(env: dict, name: str) -> dict:
    return next(c for c in env["components"] if c["name"] == name)


def test_scheduler_killed_is_restarted_and_runs_still_succeed(plane: ControlPlane, shared_env: str) -> None:
    name = shared_env
    env = plane.get(name)
    old = _component(env, "scheduler")["pid"]
    os.kill(old, signal.SIGKILL)
    restarted = wait_for(
        lambda: (c := _component(plane.get(name), "scheduler"))["restarts"] >= 1 and c["state"] == "RUNNING" and c,
        timeout=120, what="the scheduler to be restarted",
    )
    assert restarted["pid"] != old
    # what the killed scheduler had forked into its group (executor workers, log server) is gone
    leftovers = [p for p in psutil.process_iter(["status"]) if _pgid(p.pid) == old and p.info["status"] != "zombie"]
    assert leftovers == []
    wait_for(lambda: plane.get(name)["status"] == "AVAILABLE", timeout=120, what="AVAILABLE again")
    events = plane.events(name)
    assert any(e["status"] == "UNAVAILABLE" and "scheduler" in e["reason"] for e in events)

    # held down (stopped, so its process stays up): only its heartbeat, as Airflow's health endpoint
    # reports it, tells; the environment is UNAVAILABLE with that reason until it beats again, and an
    # alert on the missing heartbeat fires once, then sends its resolved notice
    receiver = Receiver()
    rule = {"name": "heartbeat", "environment": name, "event": "scheduler_heartbeat_missing", "threshold": 8,
            "webhook": receiver.url}
    assert plane.api("POST", "/api/v1/alerts", json=rule).status_code == 201
    try:
        os.kill(restarted["pid"], signal.SIGSTOP)
        try:
            stale = wait_for(lambda: (e := plane.get(name))["status"] == "UNAVAILABLE" and e, timeout=120,
                             what="UNAVAILABLE for the scheduler's heartbeat")
            assert re.fullmatch(r"scheduler heartbeat \d+ s old", stale["status_reason"]), stale["status_reason"]
            assert _component(stale, "scheduler")["state"] == "RUNNING"
            _, _, fired = receiver.next(alert="heartbeat", state="firing")
            assert re.fullmatch(r"no scheduler heartbeat for \d+ s \(threshold 8 s\)", fired["summary"]), fired
        finally:
            os.kill(restarted["pid"], signal.SIGCONT)
        wait_for(lambda: plane.get(name)["status"] == "AVAILABLE", timeout=120, what="AVAILABLE once it beats again")
        _, _, resolved = receiver.next(alert="heartbeat", state="resolved")
        assert resolved["incident_id"] == fired["incident_id"]
    finally:
        plane.api("DELETE", "/api/v1/alerts/heartbeat")
        receiver.close()
    assert plane.airflow(name).run_dag("hello_taskflow") == "success"


def test_control_plane_restart_adopts_running_environments(plane: ControlPlane, shared_env: str) -> None:
    name = shared_env
    env = plane.wait(name)
    assert env["status"] == "AVAILABLE", env
    pids = {c["name"]: c["pid"] for c in env["components"]}
    plane.restart()
    after = wait_for(lambda: (e := plane.get(name))["components"] and e, timeout=60, what="components listed")
    assert {c["name"]: c["pid"] for c in after["components"]} == pids
    assert all(c["restarts"] == 0 for c in after["components"])
    assert after["status"] == "AVAILABLE"
    assert plane.airflow(name).run_dag("hello_taskflow") == "success"


def test_control_plane_killed_during_create_is_never_stuck(plane: ControlPlane, dags) -> None:
    plane.cli("env", "create", "crash", "--dags", str(dags))
    # kill the control plane while the create is in flight
    wait_for(lambda: _steps(plane, "crash"), timeout=60, interval=0.1, what="the create to start working")
    plane.stop(signal.SIGKILL)
    plane.start()
    final = plane.wait("crash")
    assert final["status"] in ("AVAILABLE", "CREATE_FAILED")
    assert final["status"] == "AVAILABLE", final
    # exactly one set of processes runs: nothing was started twice. Only processes Hangar
    # spawned lead their own session; Airflow's own children do not.
    root = plane.home / "environments" / _env_id(plane, "crash")
    leaders = [p for p in psutil.process_iter(["cwd", "cmdline"]) if p.info["cwd"] == str(root) and _leads_session(p.pid)]
    # the environment's fork server leads a session too: one at most, the live control plane's
    forkservers = [p for p in leaders if "hangar_airflow.forkserver" in " ".join(p.info["cmdline"])]
    assert len(forkservers) <= 1 and all(p.ppid() == plane.process.pid for p in forkservers)
    recorded = {json.loads(f.read_text())["pid"] for f in (root / "run").glob("*.pid")}
    assert {p.pid for p in leaders if p not in forkservers} == recorded
    # a forked component is named for what it runs, as an exec'd one is
    assert all(" ".join(p.cmdline()).startswith("airflow ") for p in leaders if p not in forkservers)
    assert len(recorded) == 4
    plane.discard("crash")


def test_an_environment_deleted_during_its_create_stays_deleted_across_restarts(plane: ControlPlane, dags) -> None:
    """The create is closed by the delete, so neither a restart nor a kill -9 and restart
    resumes it: no process, database or folder of the environment comes back."""
    response = plane.api("POST", "/api/v1/environments", json={"name": "phoenix", "dags": str(dags)})
    assert response.status_code == 201, response.text
    wait_for(lambda: "starting components" in [s["step"] for s in _steps(plane, "phoenix")], timeout=300,
             interval=0.2, what="the create to start its components")
    env_id = _env_id(plane, "phoenix")
    with sqlite3.connect(plane.home / "state" / "hangar.db") as db:
        (database,) = db.execute("SELECT database_name FROM environments WHERE id = ?", (env_id,)).fetchone()
    plane.delete("phoenix")
    root = plane.home / "environments" / env_id
    for sig in (signal.SIGTERM, signal.SIGKILL):
        plane.restart(sig)  # once it answers, the restarted control plane has chosen what to resume
        with sqlite3.connect(plane.home / "state" / "hangar.db") as db:
            operations = db.execute("SELECT kind, done, steps FROM operations WHERE environment_id = ? ORDER BY id",
                                    (env_id,)).fetchall()
        assert [(kind, done) for kind, done, _ in operations] == [("create", 1), ("delete", 1)], operations
        assert json.loads(operations[0][2])[-1]["step"] == "superseded by delete"
        assert not root.exists()
        left = [p.pid for p in psutil.process_iter(["cwd"]) if (p.info["cwd"] or "").startswith(str(root))]
        assert left == [], f"processes of the deleted environment run again: {left}"
    with plane.postgres() as db, db.cursor() as c:
        c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        assert c.fetchone() is None


def _env_id(plane: ControlPlane, name: str) -> str:
    with sqlite3.connect(plane.home / "state" / "hangar.db") as db:
        return db.execute("SELECT id FROM environments WHERE name = ? AND status != 'DELETED'", (name,)).fetchone()[0]


def _steps(plane: ControlPlane, name: str) -> list:
    with sqlite3.connect(plane.home / "state" / "hangar.db") as db:
        row = db.execute(
            "SELECT o.steps FROM operations o JOIN environments e ON e.id = o.environment_id WHERE e.name = ?", (name,)
        ).fetchone()
    return json.loads(row[0]) if row else []


def _leads_session(pid: int) -> bool:
    try:
        return os.getsid(pid) == pid
    except ProcessLookupError:
        return False


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
