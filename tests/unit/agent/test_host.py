"""The joined host's loop with a control plane faked in memory and a stand-in for `airflow`
(a real process that says "ready." and leaves on SIGTERM): heartbeats, a changed configuration
replacing the worker (new one first, old one by warm shutdown), new DAGs swapped in without a
restart, revocation and Ctrl-C ending the join, and a worker left by a killed join adopted."""
from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from hangar.agent.bundle import worker_spec
from hangar.agent.errors import JoinRefused
from hangar.agent.host import JoinedHost
from hangar.backend.components import READY_FILE_ENV
from hangar.runtime.airflow_config import CELERY_READY_CONFIG, EnvironmentLayout
from hangar.runtime.remote_worker import content_sha256, pack
from hangar.runtime.venvs import READY_MARKER, Runtime, runtime_key
from hangar.schemas.worker_bundle import WorkerBundle
from hangar.settings import Settings

pytestmark = pytest.mark.timeout(120)

ENV_ID = "0c1d2e3f-0000-4000-8000-000000000001"
# `airflow celery worker` as far as the join can tell: it records what it was started with, says it
# is ready, and exits on SIGTERM (after a moment, as a warm shutdown with nothing running would)
FAKE_AIRFLOW = """#!{python}
import json, os, signal, sys, time
home = os.environ["AIRFLOW_HOME"]
with open(os.path.join(home, "started-%d.json" % os.getpid()), "w") as f:
    json.dump({{"argv": sys.argv[1:], "fernet": os.environ.get("AIRFLOW__CORE__FERNET_KEY"),
               "token": os.environ.get("HANGAR_WORKER_TOKEN"), "config": os.environ.get("AIRFLOW_CONFIG")}}, f)
print("[INFO/MainProcess] node ready.", flush=True)
signal.signal(signal.SIGTERM, lambda *_: (time.sleep(0.3), sys.exit(0)))
while True:
    time.sleep(0.1)
"""
CFG = """[core]
dags_folder = /srv/hangar/environments/{id}/dags-current
plugins_folder = /srv/hangar/environments/{id}/plugins/abcd
executor = CeleryExecutor
execution_api_server_url = http://cp.example.com:28123/execution/

[logging]
base_log_folder = /srv/hangar/environments/{id}/logs
""".format(id=ENV_ID)


def wait_until(predicate: Callable[[], object], *, timeout: float = 60.0, what: str = "condition"):
    """Poll in real time; the timeout is only a safety net, never an assertion about speed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class FakePlane:
    """The control plane's routes for joined hosts, in memory."""

    def __init__(self, bundle: WorkerBundle, sources: dict[str, Path]) -> None:
        self.current, self.sources = bundle, sources
        self.beats: list[dict] = []
        self.revoked = False

    def _check(self) -> None:
        if self.revoked:
            raise JoinRefused("WORKER_TOKEN_REVOKED", "the worker token was revoked", status=403)

    def bundle(self) -> WorkerBundle:
        self._check()
        return self.current

    def heartbeat(self, report: dict) -> dict:
        self._check()
        self.beats.append(report)
        return {"accepted": True, "revoked": False, "lost_after_seconds": 4.0}

    def download(self, part: str, target: Path) -> None:
        pack(self.sources[part], target)

    def change(self, **fields) -> None:
        self.current = self.current.model_copy(update=fields)

    def close(self) -> None:
        pass


@pytest.fixture
def setup(tmp_path: Path):
    dags, plugins = tmp_path / "dags", tmp_path / "plugins"
    dags.mkdir()
    plugins.mkdir()
    (dags / "hello.py").write_text("HELLO = 1\n")
    (plugins / "hangar_login.py").write_text("X = 1\n")
    key = runtime_key(python="3.11", airflow_version="3.3.2", requirements=None, celery=True)
    runtime = tmp_path / "home" / "runtimes" / key
    (runtime / "bin").mkdir(parents=True)
    airflow = runtime / "bin" / "airflow"
    airflow.write_text(FAKE_AIRFLOW.format(python=sys.executable))
    airflow.chmod(0o755)
    (runtime / READY_MARKER).write_text("3.3.2")  # a cached runtime: nothing is built
    bundle = WorkerBundle(
        environment_id=ENV_ID, environment="sales", revision=1, airflow_version="3.3.2", requirements=None,
        runtime_python="3.11", runtime_epoch=0, runtime_key=key, airflow_cfg=CFG,
        env={"AIRFLOW__CORE__FERNET_KEY": "fernet-1"}, queue=f"hangar.{ENV_ID}", worker_concurrency=5,
        startup_script=None, dags_sha256=content_sha256(dags), plugins_sha256=content_sha256(plugins),
    )
    plane = FakePlane(bundle, {"dags": dags, "plugins": plugins})
    return plane, tmp_path / "home", dags


def new_host(plane: FakePlane, home: Path, **fields) -> JoinedHost:
    settings = Settings(home=home, start_seconds=0.2, stable_seconds=5)
    layout = EnvironmentLayout(root=home / "environments" / "sales", joined_host=True)
    return JoinedHost(plane=plane, layout=layout, runtimes=home / "runtimes",
                      hostname="edge-1", concurrency=fields.pop("concurrency", 4), drain_seconds=30,
                      refresh_seconds=fields.pop("refresh_seconds", 0.5), settings=settings, **fields)


def started(home: Path) -> list[dict]:
    found = sorted((home / "environments" / "sales").glob("started-*.json"), key=lambda p: p.stat().st_mtime)
    return [{**json.loads(p.read_text()), "pid": int(p.stem.split("-")[1])} for p in found]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def in_thread(host: JoinedHost) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            host.run()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, errors


def test_runs_heartbeats_follows_changes_and_leaves_when_revoked(setup):
    plane, home, dags = setup
    host = new_host(plane, home)
    thread, errors = in_thread(host)
    wait_until(lambda: plane.beats, what="a heartbeat")
    (first,) = wait_until(lambda: started(home), what="the worker to start")
    node = f"edge-1-1@{ENV_ID}"
    assert first["argv"] == ["celery", "worker", "--concurrency", "4", "--queues", f"hangar.{ENV_ID}",
                             "--celery-hostname", node, "--without-mingle", "--without-gossip"]
    assert first["fernet"] == "fernet-1" and first["token"] is None
    cfg = Path(first["config"]).read_text()
    assert "/srv/hangar" not in cfg and str(home / "environments" / "sales" / "dags-current") in cfg
    assert "http://cp.example.com:28123/execution/" in cfg
    beat = plane.beats[-1]
    assert (beat["hostname"], beat["state"], beat["concurrency"], beat["workers"]) == ("edge-1", "RUNNING", 4, [node])
    assert beat["airflow_version"] == "3.3.2" and beat["runtime_key"] == plane.current.runtime_key

    # new DAGs: swapped in, nothing restarts
    (dags / "more.py").write_text("MORE = 1\n")
    plane.change(dags_sha256=content_sha256(dags))
    live = home / "environments" / "sales" / "dags-current"
    wait_until(lambda: (live / "more.py").exists(), what="the new DAG file")
    assert len(started(home)) == 1

    # a new secret: a second worker starts, then the first leaves by warm shutdown
    plane.change(env={"AIRFLOW__CORE__FERNET_KEY": "fernet-2"}, revision=2)
    wait_until(lambda: len(started(home)) == 2, what="the replacement worker")
    second = started(home)[1]
    assert second["fernet"] == "fernet-2" and f"edge-1-2@{ENV_ID}" in second["argv"]
    wait_until(lambda: gone(first["pid"]), what="the old worker to leave")
    wait_until(lambda: plane.beats[-1]["workers"] == [f"edge-1-2@{ENV_ID}"], what="a heartbeat naming only the new one")

    plane.revoked = True
    thread.join(timeout=60)
    assert not thread.is_alive() and not errors
    assert gone(second["pid"])
    assert all(b["state"] != "STOPPED" for b in plane.beats)  # revoked: nothing more is said
    assert not list((home / "environments" / "sales" / "run").rglob("*.pid"))


def test_a_stop_drains_the_worker_and_reports_stopped(setup):
    plane, home, _ = setup
    host = new_host(plane, home)
    thread, errors = in_thread(host)
    (first,) = wait_until(lambda: started(home), what="the worker to start")
    wait_until(lambda: plane.beats, what="a heartbeat")
    host.request_stop("SIGTERM received")
    thread.join(timeout=60)
    assert not thread.is_alive() and not errors
    assert gone(first["pid"])
    last = plane.beats[-1]
    assert (last["state"], last["concurrency"], last["workers"]) == ("STOPPED", 0, [])


def test_a_worker_left_by_a_killed_join_is_adopted_or_retired(setup):
    plane, home, _ = setup
    killed = new_host(plane, home)  # as far as it got before SIGKILL: the worker runs, nobody watches it
    killed.layout.create()
    killed.adopt(plane.current)
    killed.apply(plane.current)
    (first,) = wait_until(lambda: started(home), what="the worker to start")

    again = new_host(plane, home)
    thread, errors = in_thread(again)
    wait_until(lambda: plane.beats, what="a heartbeat")
    assert again.current is not None and again.current.pid == first["pid"] and len(started(home)) == 1
    again.request_stop("SIGINT received")
    thread.join(timeout=60)
    assert not errors and gone(first["pid"])

    # killed again, and the environment changed meanwhile: the leftover leaves, a new worker runs
    killed = new_host(plane, home)
    killed.adopt(plane.current)
    killed.apply(plane.current)
    wait_until(lambda: len(started(home)) == 2, what="the worker to start")
    leftover = started(home)[1]
    plane.change(env={"AIRFLOW__CORE__FERNET_KEY": "fernet-2"})
    later = new_host(plane, home)
    thread, errors = in_thread(later)
    wait_until(lambda: len(started(home)) == 3, what="a worker with the new configuration")
    wait_until(lambda: gone(leftover["pid"]), what="the leftover to leave")
    assert started(home)[2]["fernet"] == "fernet-2"
    later.request_stop("SIGINT received")
    thread.join(timeout=60)
    assert not errors


def test_a_joined_hosts_worker_has_a_ready_file_when_hangars_celery_config_is_in_force(setup):
    """As on the control plane: RUNNING once Celery is ready, unless the user configured their own
    celery_config_options (then no file is written, and start_seconds counts)."""
    plane, home, _ = setup
    layout = EnvironmentLayout(root=home / "environments" / "sales", joined_host=True)
    runtime = Runtime(key="k", path=home / "runtimes" / "k", airflow_version="3.3.2")

    def spec_for(cfg: str, index: int = 1):
        return worker_spec(plane.current, runtime, cfg, index=index, layout=layout, hostname="edge-1", concurrency=None,
                           plugins=None, settings=Settings(home=home))

    ours = CFG + f"\n[celery]\ncelery_config_options = {CELERY_READY_CONFIG}\n"
    spec = spec_for(ours, index=2)
    assert spec.ready_file == layout.run / "worker-2.ready"
    assert spec.env[READY_FILE_ENV] == str(spec.ready_file)
    assert spec_for(ours, index=2).digest() == spec.digest()  # the same worker again: nothing to replace
    theirs = spec_for(CFG + "\n[celery]\ncelery_config_options = mine.CONFIG\n")
    assert theirs.ready_file is None and READY_FILE_ENV not in theirs.env
