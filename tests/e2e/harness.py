"""Drives a real Hangar control plane and real Airflow environments for end-to-end tests.

The control plane runs as a subprocess (`python -m hangar.cli.main server`), the
way a user runs it. Tests read state, tokens and events through Hangar's HTTP API
(`get`, `events`, `airflow`, `delete`, `wait`); they run the `hangar` CLI only where
the CLI itself is under test (its flags, output, exit codes and `--wait`). Airflow is
reached only through its own REST API.

Every control plane of a test session shares one runtimes directory (HANGAR_RUNTIMES_DIR),
so Airflow is built once per runtime key per session rather than once per home.
"""
from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "dags"
# A requirement Airflow 3's runtime does not have. Tests that add a requirement to an environment
# add this one, so its runtime (tens of seconds to build) is built once per run, not once per test.
ADDED_REQUIREMENT = "inflection==0.5.1"
IN_PROGRESS = {"CREATING", "UPDATING", "DELETING", "ROLLING_BACK", "PENDING", "CREATING_SNAPSHOT", "MAINTENANCE"}


@functools.cache
def shared_runtimes_dir() -> Path:
    """One runtimes directory for every control plane of this test process: HANGAR_TEST_RUNTIMES_DIR
    if set (kept, so runs after it reuse its runtimes), else a fresh folder removed at exit, so each
    run still builds every runtime once from uv's cache. Traversable by all: environments'
    processes may run as users of their own."""
    given = os.environ.get("HANGAR_TEST_RUNTIMES_DIR")
    folder = Path(given) if given else Path(tempfile.mkdtemp(prefix="hangar-test-runtimes-"))
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    if not given:
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@functools.cache
def runtime_python() -> str:
    """The Python the tests' control planes build runtimes with: as root (environments run as
    their own users) one an unprivileged user can run, as ControlPlane sets it. Tests that build
    runtimes themselves name it too, so they use the runtimes the control planes build (and the
    control planes theirs) instead of building each Airflow version a second time."""
    from hangar.runtime import venvs

    return venvs.python_for_everyone("3.11") if os.geteuid() == 0 else "3.11"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, *, timeout: float, interval: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last value: {last!r}")


@dataclass
class ControlPlane:
    home: Path
    port: int
    env_port_start: int
    process: subprocess.Popen | None = None
    # more HANGAR_* settings (a broker URL, a shorter autoscaler cooldown)
    extra_env: dict[str, str] = field(default_factory=dict)
    # where its environments send their StatsD metrics: a port of its own, as control planes run side by side
    statsd_port: int = field(default_factory=lambda: free_port(socket.SOCK_DGRAM))
    log: Path = field(init=False)
    # environments asked to be deleted that cleanup() still has to see gone (discard)
    discarded: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.log = self.home / "test-server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            # not pytest's own variables: PYTEST_CURRENT_TEST changes with each test phase, and a
            # component's environment (hence its pid file's digest) must not depend on when the
            # control plane was started
            **{k: v for k, v in os.environ.items() if not k.startswith(("HANGAR_", "PYTEST_"))},
            "HANGAR_HOME": str(self.home), "HANGAR_URL": self.url,
            "HANGAR_ENV_PORT_START": str(self.env_port_start),
            "HANGAR_ENV_PORT_END": str(self.env_port_start + 999),
            "HANGAR_RUNTIMES_DIR": str(shared_runtimes_dir()),
            "HANGAR_STATSD_PORT": str(self.statsd_port),
            # a hanging startup script is given up on quickly in tests
            "HANGAR_STARTUP_TIMEOUT": "8",
            **self.extra_env,
        }

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hangar.cli.main", "server", "--home", str(self.home), "--port", str(self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        wait_for(self._up, timeout=60, what="the control plane to answer /health")

    def _up(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"control plane exited: {self.log.read_text()[-2000:]}")
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200 and (self.home / "admin.key").exists()
        except httpx.HTTPError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()

    @property
    def key(self) -> str:
        return (self.home / "admin.key").read_text().strip()

    def api(self, method: str, path: str, *, headers: dict | None = None, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}", **(headers or {})}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def cli(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "hangar.cli.main", *args], env=self.env, capture_output=True,
                                text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"hangar {' '.join(args)} failed ({result.returncode}): {result.stderr}{result.stdout}")
        return result

    def get(self, name: str) -> dict:
        response = self.api("GET", f"/api/v1/environments/{name}")
        assert response.status_code == 200, f"GET {name}: {response.status_code} {response.text}"
        return response.json()

    def events(self, name: str) -> list[dict]:
        response = self.api("GET", f"/api/v1/environments/{name}/events")
        assert response.status_code == 200, f"events of {name}: {response.status_code} {response.text}"
        return response.json()

    def token(self, name: str) -> str:
        response = self.api("POST", f"/api/v1/environments/{name}/token")
        assert response.status_code == 200, f"token of {name}: {response.status_code} {response.text}"
        return response.json()["token"]

    def wait(self, name: str, *, timeout: float = 900) -> dict:
        """The environment once it settles (no longer CREATING, UPDATING, ...)."""
        return wait_for(lambda: (env := self.get(name))["status"] not in IN_PROGRESS and env, timeout=timeout,
                        what=f"{name} to settle")

    def delete(self, name: str, *, timeout: float = 300) -> None:
        """Delete an environment and wait until it is gone."""
        response = self.api("DELETE", f"/api/v1/environments/{name}")
        assert response.status_code in (202, 404), f"DELETE {name}: {response.status_code} {response.text}"
        wait_for(lambda: self.api("GET", f"/api/v1/environments/{name}").status_code == 404, timeout=timeout,
                 what=f"{name} to be deleted")

    def discard(self, name: str) -> None:
        """Delete an environment without waiting for it to go: the next test starts meanwhile, and
        cleanup() waits until every discarded environment is gone (and fails if one is not)."""
        response = self.api("DELETE", f"/api/v1/environments/{name}")
        assert response.status_code in (202, 404), f"DELETE {name}: {response.status_code} {response.text}"
        self.discarded.add(name)

    def wait_discarded(self, *, timeout: float = 300) -> None:
        names = sorted(self.discarded)
        wait_for(lambda: all(self.api("GET", f"/api/v1/environments/{name}").status_code == 404 for name in names),
                 timeout=timeout, what=f"{', '.join(names)} to be deleted")
        self.discarded.clear()

    def create(self, name: str, dags: Path, *extra: str) -> dict:
        return json.loads(self.cli("env", "create", name, "--dags", str(dags), "--wait", "--json", *extra).stdout)

    def airflow(self, name: str) -> "Airflow":
        env = self.get(name)
        token = self.token(name)
        return Airflow(base=env["webserver_url"], token=token, major=int(env["airflow_version"].split(".")[0]))

    def env_id(self, name: str) -> str:
        """The id of the live environment `name`, from the state database."""
        from hangar.store import repository
        from hangar.store.db import open_store

        store = open_store(self.home / "state" / "hangar.db")
        try:
            with store.session() as session:
                return repository.get_live(session, name).id
        finally:
            store.engine.dispose()

    def postgres(self, dbname: str = "postgres"):
        """A connection to the embedded PostgreSQL as the control plane makes it: postgres over the
        socket, on the server's own port (recorded in hangar.port when it has one)."""
        import psycopg2

        pgdata = self.home / "pgdata"
        port_file = pgdata / "hangar.port"
        port = int(port_file.read_text()) if port_file.exists() else 5432
        return psycopg2.connect(host=str(pgdata), port=port, user="postgres", dbname=dbname)

    def secrets(self, name: str) -> dict[str, str]:
        """An environment's secrets as Hangar reads them (data keys under KMS key versions under the master key)."""
        from hangar.crypto import Envelope
        from hangar.store import repository
        from hangar.store.db import open_store

        store = open_store(self.home / "state" / "hangar.db")
        try:
            envelope = Envelope((self.home / "master.key").read_bytes())
            with store.session() as session:
                env = repository.get_live(session, name)
                return repository.get_secrets(session, envelope, env_id=env.id)
        finally:
            store.engine.dispose()

    def cleanup(self) -> None:
        """Stop everything this control plane started, even after a failed test; fail if an
        environment a test discarded was not deleted."""
        try:
            if self.discarded and self.process is not None and self.process.poll() is None:
                self.wait_discarded()
        finally:
            self._stop_everything()

    def _stop_everything(self) -> None:
        self.stop()
        for pid_file in [*self.home.glob("environments/*/run/*.pid"), *self.home.glob("environments/*/run/draining/*.pid")]:
            try:
                record = json.loads(pid_file.read_text())
                os.killpg(record["pid"], signal.SIGKILL)
            except (ValueError, ProcessLookupError, PermissionError, FileNotFoundError):
                pass
        from hangar.backend import confinement, identity

        for folder in self.home.glob("environments/*"):  # one a test left (or failed to delete) leaves no user
            confinement.remove(folder.name)
            identity.remove_user(folder.name)
        pgdata = self.home / "pgdata"
        if (pgdata / "postmaster.pid").exists():
            pid = int((pgdata / "postmaster.pid").read_text().split()[0])
            try:
                psutil.Process(pid).terminate()
            except psutil.Error:
                pass


@dataclass
class Airflow:
    """Airflow's own REST API (v2 on 3.x, v1 on 2.x) with a Hangar-minted bearer token."""

    base: str
    token: str
    major: int

    @property
    def api(self) -> str:
        return f"{self.base}/api/v2" if self.major >= 3 else f"{self.base}/api/v1"

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, f"{self.api}{path}", headers={"Authorization": f"Bearer {self.token}"},
                             timeout=30, **kwargs)

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        wait_for(lambda: self.request("GET", f"/dags/{dag_id}").status_code == 200, timeout=timeout,
                 what=f"DAG {dag_id} to be parsed")

    def trigger(self, dag_id: str) -> str:
        self.wait_for_dag(dag_id)
        response = self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        assert response.status_code == 200, response.text
        body = {"logical_date": None} if self.major >= 3 else {}
        response = self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)
        assert response.status_code == 200, response.text
        return response.json()["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        response = self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
        assert response.status_code == 200, response.text
        return response.json()["state"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        return wait_for(
            lambda: (s := self.run_state(dag_id, run_id)) in ("success", "failed") and s, timeout=timeout,
            interval=1, what=f"run {run_id} of {dag_id} to finish",
        )

    def run_dag(self, dag_id: str, timeout: float = 300) -> str:
        return self.wait_for_run(dag_id, self.trigger(dag_id), timeout=timeout)
