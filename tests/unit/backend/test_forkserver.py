"""The fork server with a stand-in component (tests/unit/backend/fork_entry.py) under this
interpreter: what a forked component gets, that its pid file comes first, that it outlives
the fork server, and that a fork server that cannot start leaves starts to the plain spawn."""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from hangar.backend import pidfiles
from hangar.backend.forkserver import Forker, ForkRequest, ForkServer, forkserver_key
from hangar.backend.plan import LaunchPlan
from hangar.backend.process import ManagedProcess, ProcessSpec, ProcessState
from hangar.runtime.airflow_config import ADDON_PATH

ROOT = Path(__file__).resolve().parents[3]
ENTRY = ("--entry", "tests.unit.backend.fork_entry:main")


def _env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": f"{ADDON_PATH}:{ROOT}",
            "FORK_REPORT": str(tmp_path / "report.json"), "FORK_RELEASE": str(tmp_path / "release"),
            "FORK_PID_FILE": str(tmp_path / "run" / "c.pid")}


def _server(tmp_path: Path, *preload: str, web: str = "tests.unit.backend.fork_web", **env: str) -> ForkServer:
    server = ForkServer(key="k", python=Path(sys.executable), env={**_env(tmp_path), **env}, cwd=tmp_path,
                       log_file=tmp_path / "logs" / "forkserver.log",
                       extra_args=(*ENTRY, "--preload", *(preload or ("tests.unit.backend.fork_preloaded",)),
                                   "--web-preload", web))
    server.start()
    return server


def _request(tmp_path: Path, **env: str) -> ForkRequest:
    (tmp_path / "run").mkdir(exist_ok=True)
    (tmp_path / "work").mkdir(exist_ok=True)
    return ForkRequest(argv=["/opt/airflow", "scheduler"], env={**_env(tmp_path), **env}, cwd=tmp_path / "work",
                       log_file=tmp_path / "c.log", pid_file=tmp_path / "run" / "c.pid",
                       record={"argv": ["/opt/airflow", "scheduler"], "spec": "digest"})


def _wait(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := predicate()):
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def _report(tmp_path: Path) -> dict:
    path = tmp_path / "report.json"
    return _wait(lambda: path.exists() and path.read_text() and json.loads(path.read_text()))


@pytest.fixture
def server(tmp_path: Path):
    server = _server(tmp_path)
    yield server
    server.close()
    (tmp_path / "release").touch()


def test_a_forked_component_gets_its_own_session_environment_folder_and_log(tmp_path: Path, server: ForkServer) -> None:
    assert server.ready(30)
    pid, create_time = server.spawn(_request(tmp_path, HANGAR_SPAWN_ID="abc", AIRFLOW__LOGGING__LOGGING_LEVEL="DEBUG"))
    report = _report(tmp_path)
    assert report["pid"] == pid and report["sid"] == pid  # leads its own session
    assert report["cwd"] == str(tmp_path / "work")
    assert report["argv"] == ["/opt/airflow", "scheduler"]
    assert report["env"]["HANGAR_SPAWN_ID"] == "abc" and report["env"]["AIRFLOW__LOGGING__LOGGING_LEVEL"] == "DEBUG"
    assert report["preloaded"]  # imported once, before the fork
    assert abs(psutil.Process(pid).create_time() - create_time) < 0.01
    assert "component says hello" in _wait(lambda: (tmp_path / "c.log").read_text())


def test_the_pid_file_is_written_before_the_component_runs(tmp_path: Path, server: ForkServer) -> None:
    assert server.ready(30)
    pid, create_time = server.spawn(_request(tmp_path))
    report = _report(tmp_path)
    assert report["record"] == {"argv": ["/opt/airflow", "scheduler"], "spec": "digest", "pid": pid,
                                "create_time": create_time}
    assert pidfiles.read_record(tmp_path / "run" / "c.pid") == report["record"]


def test_components_outlive_the_fork_server_and_it_ends_with_the_control_plane(tmp_path: Path, server: ForkServer) -> None:
    assert server.ready(30)
    pid, create_time = server.spawn(_request(tmp_path))
    _report(tmp_path)
    forkserver = psutil.Process(pid).parent()
    server.close()  # the control plane's end closes, as when the control plane exits or is killed
    _wait(lambda: not forkserver.is_running() or forkserver.status() == psutil.STATUS_ZOMBIE)
    assert pidfiles.alive(pid, create_time)
    (tmp_path / "release").touch()
    _wait(lambda: not pidfiles.alive(pid, create_time))


def test_a_component_whose_pid_file_cannot_be_written_never_runs(tmp_path: Path, server: ForkServer) -> None:
    assert server.ready(30)
    request = _request(tmp_path)
    request = replace(request, pid_file=tmp_path / "missing-folder" / "c.pid")
    assert server.spawn(request) is None  # the fork server answered an error and is still usable
    assert not (tmp_path / "report.json").exists()
    assert server.spawn(_request(tmp_path)) is not None
    _report(tmp_path)


def test_a_fork_server_that_cannot_import_leaves_the_start_to_a_fresh_process(tmp_path: Path) -> None:
    server = _server(tmp_path, "tests.unit.backend.fork_broken")
    try:
        assert not server.ready(30)
        assert server.state == "GONE" and "exited" in (server.reason or "")
        assert "broken on purpose" in (tmp_path / "logs" / "forkserver.log").read_text()
        assert server.spawn(_request(tmp_path)) is None
        spec = ProcessSpec(name="c", argv=[sys.executable, "-c", "import time; time.sleep(60)"], env=_env(tmp_path),
                           cwd=tmp_path, log_file=tmp_path / "c.log", pid_file=tmp_path / "run" / "c.pid")
        process = ManagedProcess(spec=spec, spawner=lambda s, i, d: server.spawn(_request(tmp_path)))
        process.start()
        assert process.state == ProcessState.STARTING and process.is_alive()
        assert psutil.Process(process.pid).parent().pid == os.getpid()  # spawned here, as before
        process.stop_and_wait()
    finally:
        server.close()


def test_spawn_never_waits_for_imports_and_a_new_configuration_gets_a_new_fork_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Forker, "extra_args", (*ENTRY, "--preload", "tests.unit.backend.fork_slow"))
    root = tmp_path / "env"
    (root / "logs").mkdir(parents=True)
    cfg = root / "airflow.cfg"
    cfg.write_text("[core]\nparallelism = 4\n")
    plan = LaunchPlan(env_id="e", major=3, airflow_bin=Path(sys.executable).parent / "airflow", root=root,
                      env={**_env(tmp_path), "AIRFLOW_CONFIG": str(cfg), "HOLD_IMPORTS": str(tmp_path / "go")},
                      web_port=1, start_seconds=1, start_retries=1, stable_seconds=1, fork=True)
    forker = Forker(plan)
    spec = ProcessSpec(name="c", argv=["x"], env={}, cwd=root, log_file=root / "c.log", pid_file=root / "c.pid")
    try:
        forker.prepare(plan, wait=False)
        first = forker.server
        assert first is not None and first.state == "STARTING"
        assert forker.spawn(spec, "id", "digest") is None  # still importing: the caller execs instead
        assert first.state == "STARTING"
        (tmp_path / "go").touch()
        forker.prepare(plan, wait=True)
        assert first.state == "READY"
        cfg.write_text("[core]\nparallelism = 8\n")
        forker.prepare(plan, wait=False)
        assert forker.server is not first and first.state == "GONE"
        assert forker.server.key == forkserver_key(python=plan.python, env=plan.env, cfg=cfg)
        forker.prepare(plan, wait=True)
        assert forker.server.state == "READY"
    finally:
        forker.close()


def test_no_fork_server_with_a_startup_script(tmp_path: Path) -> None:
    plan = LaunchPlan(env_id="e", major=3, airflow_bin=Path("/nonexistent/bin/airflow"), root=tmp_path, env={},
                      web_port=1, start_seconds=1, start_retries=1, stable_seconds=1, fork=True,
                      wrapper=["python", "-m", "hangar_airflow.launch", "--script", "s", "--timeout", "1", "--"])
    forker = Forker(plan)
    forker.prepare(plan, wait=True)
    assert forker.server is None


def test_the_fork_server_ignores_sigterm_to_its_childrens_groups(tmp_path: Path, server: ForkServer) -> None:
    """A component's stop (SIGTERM to its group) does not reach the fork server: another group."""
    assert server.ready(30)
    pid, _ = server.spawn(_request(tmp_path))
    _report(tmp_path)
    forkserver = psutil.Process(pid).parent()
    os.killpg(pid, signal.SIGTERM)
    _wait(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    assert forkserver.is_running() and server.state == "READY"


def test_a_control_plane_killed_after_asking_for_a_fork_leaves_it_named_and_adopted(tmp_path: Path, server: ForkServer) -> None:
    """Killed after the intent and the request, before it cleared the intent: the next control
    plane's settle() keeps the child the fork server named, and adopts it; no second one starts."""
    assert server.ready(30)
    request = _request(tmp_path)
    spawn_id = pidfiles.record_intent(request.pid_file, argv=request.record["argv"], spec="digest")
    pid, create_time = server.spawn(replace(request, env={**request.env, "HANGAR_SPAWN_ID": spawn_id}))
    server.close()  # the control plane dies here: the intent is still on disk
    assert pidfiles.intent_path(request.pid_file).exists()
    pidfiles.settle(request.pid_file)
    assert not pidfiles.intent_path(request.pid_file).exists()
    spec = ProcessSpec(name="c", argv=request.record["argv"], env={}, cwd=tmp_path, log_file=tmp_path / "c.log",
                       pid_file=request.pid_file)
    adopted = ManagedProcess(spec=spec)
    assert adopted.adopt() and adopted.pid == pid and adopted.create_time == create_time
    assert len([p for p in psutil.process_iter() if p.pid == pid]) == 1


def test_the_web_servers_modules_are_imported_only_when_asked_and_then_every_child_has_them(
        tmp_path: Path, server: ForkServer) -> None:
    assert server.ready(30)
    server.spawn(_request(tmp_path))
    assert not _report(tmp_path)["web_preloaded"]  # the ready line did not wait for them
    (tmp_path / "release").touch()
    (tmp_path / "report.json").unlink()
    (tmp_path / "release").unlink()
    assert server.warm("web")
    server.spawn(_request(tmp_path))
    assert _report(tmp_path)["web_preloaded"]


def test_warming_does_not_wait_for_the_imports_and_the_next_start_comes_after_them(tmp_path: Path) -> None:
    server = _server(tmp_path, web="tests.unit.backend.fork_slow", HOLD_IMPORTS=str(tmp_path / "go"))
    try:
        assert server.ready(30)
        assert server.warm("web")  # returns while the fork server is still importing
        assert not (tmp_path / "report.json").exists()
        (tmp_path / "go").touch()
        server.settle(30)
        assert server.state == "READY"
        server.spawn(_request(tmp_path))
        assert "tests.unit.backend.fork_slow" in _report(tmp_path)["modules"]
    finally:
        server.close()
        (tmp_path / "release").touch()


def test_a_web_module_that_fails_to_import_leaves_the_fork_server_serving(tmp_path: Path) -> None:
    server = _server(tmp_path, web="tests.unit.backend.fork_broken")
    try:
        assert server.ready(30)
        assert server.warm("web")
        pid, _ = server.spawn(_request(tmp_path))
        assert not _report(tmp_path)["web_preloaded"] and pidfiles.alive(pid, psutil.Process(pid).create_time())
        assert server.state == "READY"
    finally:
        server.close()
        (tmp_path / "release").touch()
