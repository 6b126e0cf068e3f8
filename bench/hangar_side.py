"""Hangar's side of the benchmarks: a real control plane and real environments.

The control plane runs as a subprocess with its own HANGAR_HOME, exactly as in the
end-to-end tests (tests/e2e/harness.py is reused). Every number is read from the
outside: the native API for status, Airflow's REST API for DAG runs, psutil for
memory.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import ControlPlane, free_port  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
# a control plane whose components each start in a fresh interpreter, as before the fork server
NO_FORK = {"HANGAR_FORK_COMPONENTS": "false"}
# a control plane whose environments run as its own user (root), with the interpreter isolation
# picks, so that both build the same runtime
NO_ISOLATION = {"HANGAR_ISOLATION": "false", "HANGAR_RUNTIME_PYTHON": "/usr/bin/python3.11"}


@contextmanager
def control_plane(extra_env: dict[str, str] | None = None, *, env_port_start: int = 31000):
    home = Path(tempfile.mkdtemp(prefix="hangar-bench-"))
    home.chmod(0o755)
    plane = ControlPlane(home=home, port=free_port(), env_port_start=env_port_start,
                         extra_env=dict(extra_env or {}))
    plane.start()
    try:
        yield plane
    finally:
        plane.cleanup()
        shutil.rmtree(home, ignore_errors=True)


def dags_folder(*files: Path) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="hangar-bench-dags-"))
    folder.chmod(0o755)  # environments that run as their own users read it
    for file in files:
        shutil.copy(file, folder / file.name)
    return folder


def create_seconds(plane: ControlPlane, name: str, dags: Path, *, timeout: float = 900) -> dict:
    """Seconds from the create request to AVAILABLE, polled every 0.1 s through the API."""
    start = time.monotonic()
    response = plane.api("POST", "/api/v1/environments", json={"name": name, "dags": str(dags)})
    response.raise_for_status()
    while time.monotonic() - start < timeout:
        env = plane.api("GET", f"/api/v1/environments/{name}").json()
        if env["status"] not in ("CREATING",):
            break
        time.sleep(0.1)
    seconds = time.monotonic() - start
    if env["status"] != "AVAILABLE":
        raise RuntimeError(f"{name} ended {env['status']}: {env.get('status_reason')}")
    return {"seconds": round(seconds, 2), "steps": operation_steps(plane, name)}


def operation_steps(plane: ControlPlane, name: str) -> list:
    import sqlite3

    with sqlite3.connect(plane.home / "state" / "hangar.db") as db:
        row = db.execute(
            "SELECT o.steps, o.started_at FROM operations o JOIN environments e ON e.id = o.environment_id "
            "WHERE e.name = ? AND e.status != 'DELETED' ORDER BY o.id LIMIT 1", (name,)
        ).fetchone()
    return [{"started": row[1]}, *json.loads(row[0])] if row else []


def delete(plane: ControlPlane, name: str) -> None:
    plane.cli("env", "delete", name, "--wait")


def runtime_airflow(plane: ControlPlane) -> Path:
    """The airflow of the runtime Hangar built: the baseline runs the very same install."""
    return next(Path(plane.env["HANGAR_RUNTIMES_DIR"]).glob("*/bin/airflow"))


def forkserver_pid(plane: ControlPlane, name: str) -> int | None:
    """The fork server (hangar_airflow.forkserver) the environment's components were forked from."""
    for component in plane.get(name)["components"]:
        try:
            parent = psutil.Process(component["pid"]).parent()
            if parent is not None and "hangar_airflow.forkserver" in " ".join(parent.cmdline()):
                return parent.pid
        except psutil.Error:
            continue
    return None


def component_cpu_seconds(plane: ControlPlane, name: str) -> dict[str, float]:
    """CPU seconds each component (with its children) has used so far, and the fork server's."""
    pids = {c["name"]: c["pid"] for c in plane.get(name)["components"]}
    if (forkserver := forkserver_pid(plane, name)) is not None:
        pids["forkserver"] = forkserver
    used = {}
    for component, pid in pids.items():
        try:
            leader = psutil.Process(pid)
            # the fork server's children are the components, counted under their own names
            children = [] if component == "forkserver" else leader.children(recursive=True)
            times = [leader.cpu_times(), *(c.cpu_times() for c in children)]
        except psutil.Error:
            continue
        used[component] = round(sum(t.user + t.system for t in times), 2)
    return used


def environment_pss(plane: ControlPlane, name: str) -> dict:
    """Total PSS (MiB) of every process of one environment (each component's process group,
    and the fork server its components came from)."""
    env = plane.get(name)
    total, count, kinds = 0.0, 0, {}
    leaders = [(c["name"], c["pid"]) for c in env["components"]]
    if (forkserver := forkserver_pid(plane, name)) is not None:
        leaders.append(("forkserver", forkserver))
    for component_name, pid in leaders:
        component = {"name": component_name}
        leader = psutil.Process(pid)
        children = [] if component_name == "forkserver" else leader.children(recursive=True)
        for process in [leader, *children]:
            try:
                pss = process.memory_full_info().pss / 2**20
            except psutil.Error:
                continue
            total += pss
            count += 1
            kinds[component["name"]] = round(kinds.get(component["name"], 0) + pss, 1)
    return {"pss_mib": round(total, 1), "processes": count, "by_component": kinds}


def environment_cpu_seconds(plane: ControlPlane, name: str) -> float:
    """CPU seconds used so far by an environment's process tree: live processes plus the
    children they reaped (finished tasks). A difference over a run is robust to other load."""
    total, seen = 0.0, set()
    for component in plane.get(name)["components"]:
        try:
            leader = psutil.Process(component["pid"])
            processes = [leader, *leader.children(recursive=True)]
        except psutil.Error:
            continue
        for process in processes:
            if process.pid in seen:
                continue
            seen.add(process.pid)
            try:
                t = process.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.Error:
                pass
    return total
