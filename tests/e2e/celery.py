"""What the Celery end-to-end tests share: the brokers, a control plane per broker, run checks,
and release files that hold a run's tasks until the test has seen what it waits for."""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.harness import Airflow, ControlPlane, free_port

CELERY_DAGS = Path(__file__).parent / "celery_dags"
REDIS = "redis://127.0.0.1:6379/0"
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


def require_service(host: str, port: int, what: str) -> None:
    """Skip without the service, with the reason; fail instead when CI is set (CI starts them)."""
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        message = f"{what} is not reachable on {host}:{port}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {message}")
        pytest.skip(message)


def control_plane(broker: str, *, cooldown: float, port_offset: int) -> ControlPlane:
    home = Path(tempfile.mkdtemp(prefix="hangar-e2e-celery-"))
    home.chmod(0o755)
    plane = ControlPlane(home=home, port=free_port(), env_port_start=10000 + ((os.getpid() + port_offset) % 15) * 1000,
                         extra_env={"HANGAR_CELERY_BROKER_URL": broker, "HANGAR_AUTOSCALE_COOLDOWN": str(cooldown)})
    plane.start()
    return plane


def delete_all(plane: ControlPlane, *, timeout: float = 300) -> None:
    """Delete every environment of `plane` side by side (each has its own queue) and wait until all are gone."""
    listed = plane.api("GET", "/api/v1/environments")
    assert listed.status_code == 200, listed.text
    names = [env["name"] for env in listed.json()]
    for name in names:
        response = plane.api("DELETE", f"/api/v1/environments/{name}")
        assert response.status_code in (202, 404), f"DELETE {name}: {response.status_code} {response.text}"
    wait_until(lambda: all(plane.api("GET", f"/api/v1/environments/{name}").status_code == 404 for name in names),
               timeout=timeout, what=f"{', '.join(names)} to be deleted")


def dispose(plane: ControlPlane) -> None:
    plane.cleanup()
    shutil.rmtree(plane.home, ignore_errors=True)


class ReleaseFile:
    """The file a held run's tasks wait for (`held` in the DAGs of celery_dags), in a folder of its
    own that every user can traverse: tasks may run as another user, and pytest's tmp_path is 0700."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="hangar-e2e-release-"))
        self.folder.chmod(0o755)
        self.path = self.folder / "release"

    @property
    def conf(self) -> dict[str, str]:
        return {"release": str(self.path)}

    def write(self) -> None:
        self.path.touch()

    def __enter__(self) -> "ReleaseFile":
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def trigger_held(airflow: Airflow, dag_id: str, release: ReleaseFile) -> str:
    """A run of `dag_id` whose tasks hold until `release` is written."""
    airflow.wait_for_dag(dag_id)
    response = airflow.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
    assert response.status_code == 200, response.text
    response = airflow.request("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": release.conf})
    assert response.status_code == 200, response.text
    return response.json()["dag_run_id"]


def task_states(airflow: Airflow, dag_id: str, run_id: str) -> list[dict]:
    found: list[dict] = []
    while True:  # Airflow pages at 100
        response = airflow.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                                   params={"limit": 100, "offset": len(found)})
        assert response.status_code == 200, response.text
        body = response.json()
        found += body["task_instances"]
        if not body["task_instances"] or len(found) >= body["total_entries"]:
            return sorted(found, key=lambda t: (t["task_id"], t.get("map_index", -1)))


def failures(airflow: Airflow, dag_id: str, run_id: str) -> dict[str, tuple[str, str]]:
    """The state of each task of the run that did not succeed, with the end of its log."""
    report = {}
    for ti in task_states(airflow, dag_id, run_id):
        if ti["state"] != "success":
            key = f"{ti['task_id']}[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else ti["task_id"]
            log = airflow.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/"
                                  f"{max(ti['try_number'], 1)}", params={"map_index": ti.get("map_index", -1)})
            report[key] = (ti["state"], log.text[-3000:])
    return report


def workers(env: dict) -> dict[str, dict]:
    return {c["name"]: c for c in env["components"] if c["name"].startswith("worker-")}


class StatusWatch:
    """Records every status an environment shows while a test disturbs it."""

    def __init__(self, plane: ControlPlane, name: str) -> None:
        self.plane, self.name, self.seen = plane, name, set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            response = self.plane.api("GET", f"/api/v1/environments/{self.name}")
            if response.status_code == 200:
                self.seen.add(response.json()["status"])
            self._stop.wait(0.5)

    def __enter__(self) -> "StatusWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def alive(pid: int | None) -> bool:
    return pid is not None and psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE


def env_root(plane: ControlPlane, name: str) -> Path:
    """The folder of environment `name`: the one whose pid files name its components."""
    env = plane.api("GET", f"/api/v1/environments/{name}").json()
    return next(p for p in (plane.home / "environments").iterdir() if (p / "run").exists() and
                any(c["pid"] and str(c["pid"]) in (p / "run" / f"{c['name']}.pid").read_text()
                    for c in env["components"] if (p / "run" / f"{c['name']}.pid").exists()))


def log_of(plane: ControlPlane, name: str, component: str) -> str:
    return (env_root(plane, name) / "logs" / "components" / f"{component}.log").read_text(errors="replace")


def assert_ready(plane: ControlPlane, name: str, running: dict[str, dict]) -> None:
    """Each worker in `running` (RUNNING components) is up because Celery said so: its ready file,
    which Celery's worker_ready handler writes, holds that very process's pid, and its log has
    Celery's `ready.` (logged just after the signal, so it may take a moment)."""
    root = env_root(plane, name)
    for worker, component in running.items():
        assert component["state"] == "RUNNING", component
        ready = root / "run" / f"{worker}.ready"
        assert ready.read_text().strip() == str(component["pid"]), (worker, component)
        wait_until(lambda: " ready." in log_of(plane, name, worker), timeout=30, interval=0.2,
                   what=f"{worker} to log Celery's ready.")


def wait_until(predicate, *, timeout: float, interval: float = 1.0, what: str):
    """Poll `predicate`; a read that times out on a loaded machine is read again."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except httpx.TimeoutException as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")
