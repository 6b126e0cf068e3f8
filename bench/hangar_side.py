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


@contextmanager
def control_plane():
    home = Path(tempfile.mkdtemp(prefix="hangar-bench-"))
    home.chmod(0o755)
    plane = ControlPlane(home=home, port=free_port(), env_port_start=31000)
    plane.start()
    try:
        yield plane
    finally:
        plane.cleanup()
        shutil.rmtree(home, ignore_errors=True)


def dags_folder(*files: Path) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="hangar-bench-dags-"))
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
    return next(plane.home.glob("runtimes/*/bin/airflow"))


def environment_pss(plane: ControlPlane, name: str) -> dict:
    """Total PSS (MiB) of every process of one environment (each component's process group)."""
    env = plane.get(name)
    total, count, kinds = 0.0, 0, {}
    for component in env["components"]:
        leader = psutil.Process(component["pid"])
        for process in [leader, *leader.children(recursive=True)]:
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
