"""A control plane SIGKILLed at each step of a spawn, then the next control plane's adoption.

The first control plane is a real process (DRIVER) that starts an environment's components
(stand-ins for `airflow`: a shell script that execs `sleep`) and SIGKILLs itself at one step
of one component's spawn. The test then plays the next control plane, and checks that
exactly one session-leading process runs per component, each named by its pid file and
held by the supervisor, with nothing left over once the environment stops.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from hangar.backend import pidfiles
from hangar.backend.environment_processes import EnvironmentProcesses
from hangar.backend.plan import LaunchPlan
from hangar.runtime.airflow_addon.hangar_airflow import launch

pytestmark = pytest.mark.timeout(120)

FAKE_AIRFLOW = "#!/bin/sh\nexec sleep 600\n"
ADDON = Path(launch.__file__).parents[1]

# The first control plane: runs EnvironmentProcesses.start(adopt=True) as Hangar does and
# SIGKILLs itself at `point` of the `nth` spawn (0 is the first).
DRIVER = r"""
import json, os, signal, subprocess, sys
from pathlib import Path
from hangar.backend import pidfiles
from hangar.backend.environment_processes import EnvironmentProcesses
from hangar.backend.plan import LaunchPlan

point, nth, fields = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
spawn = -1

def wrap(owner, name):
    real = getattr(owner, name)
    def wrapped(*args, **kwargs):
        global spawn
        if name == "record_intent":
            spawn += 1
        if spawn == nth and point == "before " + name:
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args, **kwargs)
        if spawn == nth and point == "after " + name:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    setattr(owner, name, wrapped)

for owner, name in [(pidfiles, "record_intent"), (subprocess, "Popen"), (pidfiles, "write_pid_file"),
                    (pidfiles, "clear_intent")]:
    wrap(owner, name)
plan = LaunchPlan(**{**fields, "root": Path(fields["root"]), "airflow_bin": Path(fields["airflow_bin"])})
EnvironmentProcesses(plan).start(adopt=True)
sys.exit("the spawn never reached " + point)
"""

# Every step of ManagedProcess.start, in order; a kill at any of the last three leaves a child running.
POINTS = ["before record_intent", "after record_intent", "after Popen", "after write_pid_file", "after clear_intent"]
SPAWNED = {"after Popen", "after write_pid_file", "after clear_intent"}


def _plan(root: Path, *, wrapper: list[str] | None = None, env: dict[str, str] | None = None) -> LaunchPlan:
    airflow = root / "airflow"
    if not airflow.exists():
        airflow.write_text(FAKE_AIRFLOW)
        airflow.chmod(0o755)
    return LaunchPlan(env_id="e1", major=3, airflow_bin=airflow, env={"PATH": os.environ["PATH"], **(env or {})},
                      root=root, web_port=1, start_seconds=0.0, start_retries=3, stable_seconds=60.0,
                      wrapper=wrapper or [])


def _crash_while_starting(plan: LaunchPlan, *, point: str, nth: int) -> None:
    fields = {"env_id": plan.env_id, "major": plan.major, "airflow_bin": str(plan.airflow_bin), "env": plan.env,
              "root": str(plan.root), "web_port": plan.web_port, "start_seconds": plan.start_seconds,
              "start_retries": plan.start_retries, "stable_seconds": plan.stable_seconds, "wrapper": plan.wrapper}
    done = subprocess.run([sys.executable, "-c", DRIVER, point, str(nth), json.dumps(fields)], cwd=plan.root,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr


def _leaders(root: Path) -> set[int]:
    """Processes running in the environment's folder that lead their own session: only the
    supervisor spawns those (a startup script's shell too, while it runs)."""
    found = set()
    for process in psutil.process_iter(["cwd"]):
        try:
            if process.info["cwd"] == str(root) and os.getsid(process.pid) == process.pid:
                found.add(process.pid)
        except ProcessLookupError:
            continue
    return found


def _assert_one_process_per_component(processes: EnvironmentProcesses, root: Path) -> None:
    records = {name: pidfiles.read_record(root / "run" / f"{name}.pid") for name in processes.processes}
    assert all(records.values()), records
    for name, process in processes.processes.items():
        assert process.is_alive(), name
        assert process.pid == records[name]["pid"], name
    assert _leaders(root) == {record["pid"] for record in records.values()}
    assert len(records) == 4
    assert not list(root.glob("run/*.spawn"))


def _wait_until(predicate, *, timeout: float = 30.0, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def root(tmp_path: Path):
    yield tmp_path
    for pid in _leaders(tmp_path):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("point", POINTS)
def test_a_control_plane_killed_at_any_step_of_a_spawn_leaves_one_process_per_component(root, point):
    plan = _plan(root)
    _crash_while_starting(plan, point=point, nth=1)

    processes = EnvironmentProcesses(plan)
    adopted = processes.start(adopt=True)

    names = list(processes.processes)
    assert adopted == names[:1] + (names[1:2] if point in SPAWNED else [])
    _assert_one_process_per_component(processes, root)
    assert not any(p.stale for p in processes.processes.values())
    processes.stop()
    assert _leaders(root) == set()
    assert not list(root.glob("run/*.pid"))


def test_a_child_adopted_from_its_intent_is_replaced_when_the_plan_changed(root):
    _crash_while_starting(_plan(root), point="after Popen", nth=1)

    processes = EnvironmentProcesses(_plan(root, env={"HANGAR_CONFIG_DIGEST": "changed"}))
    adopted = processes.start(adopt=True)

    assert adopted == list(processes.processes)[:2]
    assert [n for n, p in processes.processes.items() if p.stale] == adopted
    _assert_one_process_per_component(processes, root)
    processes.stop()


def test_a_child_still_in_its_startup_script_is_adopted_and_keeps_its_spawn_id(root):
    script = root / "startup.sh"
    gate = root / "gate"
    script.write_text(f"export HANGAR_SPAWN_ID=forged\nwhile [ ! -e {gate} ]; do sleep 0.05; done\n")
    wrapper = [sys.executable, "-m", "hangar_airflow.launch", "--script", str(script), "--timeout", "60", "--"]
    plan = _plan(root, wrapper=wrapper, env={"PYTHONPATH": str(ADDON)})
    _crash_while_starting(plan, point="after Popen", nth=1)

    processes = EnvironmentProcesses(plan)
    adopted = processes.start(adopt=True)
    names = list(processes.processes)
    assert adopted == names[:2]
    pids = {name: processes.processes[name].pid for name in names}
    assert all(psutil.Process(pids[name]).name().startswith("python") for name in adopted)
    # each launcher's script runs in a session of its own, and inherits no spawn id
    _wait_until(lambda: len(_leaders(root) - set(pids.values())) == 4, what="every startup script")
    scripts = _leaders(root) - set(pids.values())
    assert all(pidfiles.SPAWN_ENV not in psutil.Process(pid).environ() for pid in scripts)
    gate.touch()

    def all_execed() -> bool:
        return all(psutil.Process(pid).name() == "sleep" for pid in pids.values())

    _wait_until(all_execed, what="every launcher to exec the component")
    assert {name: processes.processes[name].pid for name in names} == pids
    _assert_one_process_per_component(processes, root)
    for pid in pids.values():
        spawn_id = psutil.Process(pid).environ()[pidfiles.SPAWN_ENV]
        assert spawn_id != "forged" and len(spawn_id) == 32
    processes.stop()
    assert _leaders(root) == set()


def test_an_intents_child_is_killed_when_the_pid_file_names_another_live_process(root):
    pid_file = root / "run" / "scheduler.pid"
    recorded = subprocess.Popen(["sleep", "600"], cwd=root, start_new_session=True)
    pidfiles.write_pid_file(pid_file, pid=recorded.pid, create_time=psutil.Process(recorded.pid).create_time(),
                            argv=["sleep", "600"], spec="s")
    spawn_id = pidfiles.record_intent(pid_file, argv=["sleep", "600"], spec="s")
    extra = subprocess.Popen(["sleep", "600"], cwd=root, start_new_session=True,
                             env={**os.environ, pidfiles.SPAWN_ENV: spawn_id})
    try:
        pidfiles.settle(pid_file)

        assert extra.wait(timeout=10) == -signal.SIGKILL
        assert recorded.poll() is None
        assert pidfiles.read_record(pid_file)["pid"] == recorded.pid
        assert not pidfiles.intent_path(pid_file).exists()
    finally:
        for child in (recorded, extra):
            child.kill()
            child.wait()


def test_a_child_that_leads_its_own_session_is_not_taken_for_the_component(root):
    # the component starts a process in a session of its own (as a startup script's shell is),
    # which inherits the spawn id
    code = ("import os, subprocess; subprocess.Popen(['sleep', '600'], start_new_session=True); "
            "os.execvp('sleep', ['sleep', '600'])")
    spawn_id = pidfiles.record_intent(root / "run" / "c.pid", argv=[], spec="s")
    component = subprocess.Popen([sys.executable, "-c", code], cwd=root, start_new_session=True,
                                 env={**os.environ, pidfiles.SPAWN_ENV: spawn_id})
    try:
        _wait_until(lambda: len(_leaders(root)) == 2, what="the component's child")
        found = pidfiles.find_spawned(spawn_id)
        assert found is not None and found.pid == component.pid
    finally:
        component.kill()
        component.wait()
