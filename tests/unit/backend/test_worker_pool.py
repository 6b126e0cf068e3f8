"""EnvironmentProcesses with Celery workers and several schedulers, on stand-in processes:
scaling up starts workers, scaling down retires the least busy by draining (SIGTERM to the
leader alone), and replicas that restart do not make the environment unhealthy."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from hangar.backend.components import READY_FILE_ENV, WorkerPlan
from hangar.backend.environment_processes import EnvironmentProcesses
from hangar.backend.plan import LaunchPlan
from hangar.backend.process import ProcessState

pytestmark = pytest.mark.timeout(120)

# stands in for `airflow`: every component just runs; a TERM to the leader ends it after a moment
FAKE_AIRFLOW = """#!/bin/sh
trap 'sleep 0.5; exit 0' TERM
while true; do sleep 0.2; done
"""


def _plan(root: Path, *, workers: WorkerPlan | None, schedulers: int = 1) -> LaunchPlan:
    airflow = root / "airflow"
    if not airflow.exists():
        airflow.write_text(FAKE_AIRFLOW)
        airflow.chmod(0o755)
    return LaunchPlan(env_id="e1", major=3, airflow_bin=airflow, env={"PATH": os.environ["PATH"]}, root=root,
                      web_port=1, start_seconds=0.0, start_retries=3, stable_seconds=60.0, schedulers=schedulers,
                      workers=workers, worker_drain_seconds=60.0)


def _workers(minimum: int = 1, *, ready_files: bool = False) -> WorkerPlan:
    return WorkerPlan(concurrency=5, queue="hangar.e1", hostname_suffix="e1", min_workers=minimum, max_workers=4,
                      ready_files=ready_files)


def _settle(processes: EnvironmentProcesses) -> None:
    for _ in range(50):
        with processes.lock:
            for process in [*processes.processes.values(), *processes.draining]:
                process.tick()
            processes.draining = [p for p in processes.draining if p.state == ProcessState.STOPPING]
        if all(p.state == ProcessState.RUNNING for p in processes.processes.values()) and not processes.draining:
            return
        time.sleep(0.2)


@pytest.fixture
def root(tmp_path: Path):
    yield tmp_path
    for pid_file in [*tmp_path.glob("run/*.pid"), *tmp_path.glob("run/draining/*.pid")]:
        try:
            import json
            os.killpg(json.loads(pid_file.read_text())["pid"], signal.SIGKILL)
        except (ProcessLookupError, ValueError, FileNotFoundError):
            pass


def test_minimum_workers_start_with_the_environment(root):
    processes = EnvironmentProcesses(_plan(root, workers=_workers(minimum=2), schedulers=2))
    processes.start(adopt=False)
    assert processes.workers() == ["worker-1", "worker-2"]
    assert {"scheduler", "scheduler-2"} <= set(processes.processes)
    argv = processes.processes["worker-2"].spec.argv
    assert argv[1:] == ["celery", "worker", "--concurrency", "5", "--queues", "hangar.e1", "--celery-hostname",
                        "worker-2@e1", "--skip-serve-logs", "--without-mingle", "--without-gossip"]
    processes.stop()


def test_scale_up_then_down_retires_by_warm_shutdown(root):
    processes = EnvironmentProcesses(_plan(root, workers=_workers()))
    processes.start(adopt=False)
    assert processes.scale_workers(3) == ["worker-2", "worker-3"]
    _settle(processes)
    leaving = processes.processes["worker-3"]
    retired = processes.scale_workers(1, pick=lambda ws: sorted(ws, key=lambda p: p.spec.name, reverse=True))
    assert retired == ["worker-3", "worker-2"]
    assert processes.workers() == ["worker-1"]
    assert leaving in processes.draining and leaving.state == ProcessState.STOPPING
    assert not (root / "run" / "worker-3.pid").exists()  # moved aside: it is no longer a serving worker
    _settle(processes)
    assert not processes.draining and not leaving.is_alive()
    # a freed number is used again
    assert processes.scale_workers(2) == ["worker-2"]
    processes.stop()


def test_a_dead_worker_or_second_scheduler_does_not_make_the_environment_unhealthy(root):
    processes = EnvironmentProcesses(_plan(root, workers=_workers(), schedulers=2))
    processes.start(adopt=False)
    _settle(processes)
    processes.web_ok = True
    assert processes.health().healthy
    for name in ("worker-1", "scheduler-2"):
        os.killpg(processes.processes[name].pid, signal.SIGKILL)
    time.sleep(0.5)
    with processes.lock:
        for process in processes.processes.values():
            process.tick()
    assert processes.processes["scheduler-2"].state == ProcessState.BACKOFF
    health = processes.health()
    assert health.healthy, health.reason
    os.killpg(processes.processes["scheduler"].pid, signal.SIGKILL)  # no scheduler left running
    time.sleep(0.5)
    with processes.lock:
        processes.processes["scheduler"].tick()
    assert not processes.health().healthy
    processes.stop()


def test_workers_are_adopted_after_a_control_plane_restart(root):
    first = EnvironmentProcesses(_plan(root, workers=_workers()))
    first.start(adopt=False)
    first.scale_workers(2)
    pids = {n: first.processes[n].pid for n in first.workers()}
    second = EnvironmentProcesses(_plan(root, workers=_workers()))
    second.start(adopt=True)
    assert {n: second.processes[n].pid for n in second.workers()} == pids
    second.stop()


def test_leaving_celery_retires_every_worker(root):
    processes = EnvironmentProcesses(_plan(root, workers=_workers()))
    processes.start(adopt=False)
    processes.scale_workers(2)
    processes.use(_plan(root, workers=None))
    assert processes.workers() == []
    assert len(processes.draining) == 2
    processes.stop()


def test_the_web_server_counts_as_running_once_its_health_check_answers(root):
    """Not only after start_seconds: the answer is the better proof, and an update waits on it."""
    import httpx

    plan = _plan(root, workers=None)
    plan.start_seconds = 60.0
    processes = EnvironmentProcesses(plan)
    processes.start(adopt=False)
    answers = {"status": 503}
    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(answers["status"])))
    processes.tick(client)
    assert processes.processes[processes.web].state == ProcessState.STARTING
    answers["status"] = 200
    processes.tick(client)
    assert processes.processes[processes.web].state == ProcessState.RUNNING
    assert processes.processes["scheduler"].state == ProcessState.STARTING  # the others still prove themselves
    processes.stop()


def _tick(processes: EnvironmentProcesses) -> None:
    with processes.lock:
        for process in processes.processes.values():
            process.tick()


def test_a_worker_with_a_ready_file_runs_only_once_it_is_written(root):
    """Celery writes run/<worker>.ready on worker_ready (hangar_airflow.celery_ready): until then the
    worker is STARTING, which keeps a launch waiting but not the environment from being healthy."""
    processes = EnvironmentProcesses(_plan(root, workers=_workers(ready_files=True)))
    processes.start(adopt=False)
    worker, scheduler = processes.processes["worker-1"], processes.processes["scheduler"]
    ready = root / "run" / "worker-1.ready"
    assert worker.spec.ready_file == ready and worker.spec.env[READY_FILE_ENV] == str(ready)
    assert scheduler.spec.ready_file is None and READY_FILE_ENV not in scheduler.spec.env
    _tick(processes)  # start_seconds is 0 here: being up is enough for every other component
    processes.web_ok = True
    assert worker.state == ProcessState.STARTING and scheduler.state == ProcessState.RUNNING
    health = processes.health()
    assert health.healthy and health.settling == ("worker-1",), health
    ready.write_text(f"{worker.pid}\n")
    _tick(processes)
    assert worker.state == ProcessState.RUNNING and not processes.health().settling
    processes.stop()


def test_a_ready_file_keeps_worker_specs_stable_across_plans_and_adoption(root):
    """Its path depends on the worker's name alone: an equal plan replaces nothing, and a restarted
    control plane adopts the workers as they are (not stale)."""
    first = EnvironmentProcesses(_plan(root, workers=_workers(ready_files=True)))
    first.start(adopt=False)
    first.scale_workers(2)
    assert first.changed(_plan(root, workers=_workers(ready_files=True))) == []
    second = EnvironmentProcesses(_plan(root, workers=_workers(ready_files=True)))
    adopted = second.start(adopt=True)
    assert {"worker-1", "worker-2"} <= set(adopted)
    assert not any(second.processes[n].stale for n in second.workers())
    assert all(second.processes[n].state == ProcessState.RUNNING for n in second.workers())
    second.stop()


def test_workers_without_ready_files_run_after_start_seconds(root):
    """A user's own celery_config_options writes no ready file: such workers count as before."""
    processes = EnvironmentProcesses(_plan(root, workers=_workers()))
    processes.start(adopt=False)
    worker = processes.processes["worker-1"]
    assert worker.spec.ready_file is None and READY_FILE_ENV not in worker.spec.env
    _tick(processes)
    assert worker.state == ProcessState.RUNNING
    processes.stop()
