"""Celery environments on Redis: a burst of held tasks scales 1 -> 4 -> 1 workers, a worker chosen
for scale-down finishes its long task, a worker killed mid-task has the task retried.

Tasks last until the test writes their release file, once it has seen what it waits for
(four workers running, a busy worker retired, a worker killed), not for a time."""
from __future__ import annotations

import os
import signal

import pytest

from tests.e2e.celery import (
    CELERY_DAGS, REDIS, ReleaseFile, StatusWatch, alive, assert_ready, control_plane, delete_all, dispose, failures,
    log_of, require_service, task_states, trigger_held, wait_until, workers,
)

pytestmark = pytest.mark.e2e

# the held tasks keep the demand steady until released, so no mid-burst lull needs a long cooldown
COOLDOWN = 5


@pytest.fixture(scope="module")
def plane():
    require_service("127.0.0.1", 6379, "Redis")
    plane = control_plane(REDIS, cooldown=COOLDOWN, port_offset=11)
    yield plane
    delete_all(plane)
    dispose(plane)


@pytest.fixture(scope="module")
def env(plane):
    # a killed task is found after 20 s without a heartbeat (Airflow's default is 300 s); a running
    # task heartbeats every 2 s, so a busy machine would have to stall ten heartbeats in a row
    created = plane.create("cel", CELERY_DAGS, "--executor", "celery", "--min-workers", "1", "--max-workers", "4",
                           "--config", "workers.min_heartbeat_interval=2",
                           "--config", "scheduler.task_instance_heartbeat_timeout=20",
                           "--config", "scheduler.task_instance_heartbeat_timeout_detection_interval=2")
    assert created["status"] == "AVAILABLE", created
    assert created["executor"] == "celery"
    assert created["workers"]["min"] == 1 and created["workers"]["max"] == 4 and created["workers"]["concurrency"] == 5
    assert list(workers(created)) == ["worker-1"]
    assert_ready(plane, "cel", workers(created))  # a create waits for its workers to be ready
    return "cel"


def test_burst_scales_to_max_and_back_after_cooldown(plane, env):
    """20 tasks that hold until four workers run: 16 at once (the class's cap a DAG) need four
    workers of five slots. Released, every task succeeds, and the workers go back to one."""
    airflow = plane.airflow(env)
    with ReleaseFile() as release:
        run_id = trigger_held(airflow, "burst", release)
        running = wait_until(lambda: len(w := {n: c for n, c in workers(plane.get(env)).items()
                                                if c["state"] == "RUNNING"}) == 4 and w,
                             timeout=600, what="four workers to run")
        assert_ready(plane, env, running)  # RUNNING means Celery is ready, not that 3 s have passed
        release.write()
        assert airflow.wait_for_run("burst", run_id, timeout=600) == "success", failures(airflow, "burst", run_id)
    states = task_states(airflow, "burst", run_id)
    assert len(states) == 20
    assert {t["state"] for t in states} == {"success"}, [t for t in states if t["state"] != "success"][:3]
    # back to the minimum once the cooldown has passed, by warm shutdown (the retired workers exit)
    wait_until(lambda: list(workers(plane.get(env))) == ["worker-1"], timeout=COOLDOWN + 120,
               what="the workers to be scaled back to 1")
    retired = [w["pid"] for name, w in running.items() if name != "worker-1"]
    wait_until(lambda: not any(alive(pid) for pid in retired), timeout=120, what="the retired workers to exit")
    samples = plane.api("GET", f"/api/v1/environments/{env}/worker-samples", params={"minutes": 30}).json()
    assert max(s["desired"] for s in samples) == 4
    assert max(s["queued_tasks"] + s["running_tasks"] for s in samples) >= 16
    assert samples[-1]["current"] == 1 and samples[-1]["desired"] == 1
    shown = plane.cli("env", "get", env).stdout
    assert "workers: 1 running, 1 wanted (min 1, max 4" in shown and "each), 1 ready;" in shown


def test_long_task_on_a_worker_chosen_for_scale_down_finishes(plane, env):
    """Six held tasks need two workers; lowering max_workers to 1 makes the autoscaler retire one of
    two busy workers. Released after that, its task finishes (warm shutdown) and nothing is retried."""
    airflow = plane.airflow(env)
    with ReleaseFile() as release:
        run_id = trigger_held(airflow, "long_tasks", release)
        wait_until(lambda: sum(1 for t in task_states(airflow, "long_tasks", run_id) if t["state"] == "running") == 6,
                   timeout=240, what="all six long tasks to run")
        before = workers(plane.get(env))
        assert len(before) == 2 and "worker-1" in before, before
        plane.cli("env", "update", env, "--max-workers", "1", "--wait")
        after = wait_until(lambda: (w := workers(plane.get(env))) and len(w) == 1 and w, timeout=COOLDOWN + 60,
                           what="one worker to be retired")
        (kept,) = after
        (retired,) = set(before) - {kept}
        assert alive(before[retired]["pid"]), "the retired worker must still be finishing its task"
        release.write()
        state = airflow.wait_for_run("long_tasks", run_id, timeout=300)
        assert state == "success", failures(airflow, "long_tasks", run_id)
    states = task_states(airflow, "long_tasks", run_id)
    assert [t["try_number"] for t in states] == [1] * 6
    assert {t["state"] for t in states} == {"success"}
    wait_until(lambda: not alive(before[retired]["pid"]), timeout=60, what=f"{retired} to exit")
    log = log_of(plane, env, retired)
    assert "Warm shutdown" in log and "succeeded in" in log.rsplit("Warm shutdown", 1)[1]  # its latest shutdown
    plane.cli("env", "update", env, "--max-workers", "4", "--wait")


def test_worker_killed_mid_task_is_retried_and_environment_stays_available(plane, env):
    airflow = plane.airflow(env)
    with ReleaseFile() as release:
        run_id = trigger_held(airflow, "killed", release)
        wait_until(lambda: task_states(airflow, "killed", run_id)[0]["state"] == "running", timeout=180,
                   what="the task to run")
        ((name, worker),) = workers(plane.get(env)).items()  # the one worker, which runs the task
        with StatusWatch(plane, env) as watch:
            os.killpg(worker["pid"], signal.SIGKILL)  # the worker and its task vanish, as with a lost host
            release.write()  # only a first try that outlived the kill could finish now
            state = airflow.wait_for_run("killed", run_id, timeout=400)
            assert state == "success", failures(airflow, "killed", run_id)
    (task,) = task_states(airflow, "killed", run_id)
    assert task["state"] == "success" and task["try_number"] == 2
    # both tries' logs read back (the latest when no try is named); the killed try's holds what its
    # task supervisor wrote before the kill (it died with the worker, so its last lines may be lost)
    latest = plane.cli("env", "task-logs", env, "killed", run_id, "slow").stdout
    assert "slow: try 2 begins" in latest and "try 1 begins" not in latest
    first = plane.cli("env", "task-logs", env, "killed", run_id, "slow", "--try", "1").stdout
    assert "task_id=slow" in first and "try 2 begins" not in first
    assert watch.seen == {"AVAILABLE"}, watch.seen
    restarted = workers(plane.get(env))[name]
    assert restarted["pid"] != worker["pid"] and restarted["restarts"] >= 1
    # the killed worker's ready file did not count for its successor: RUNNING once the new one wrote its own
    restarted = wait_until(lambda: (w := workers(plane.get(env))[name])["state"] == "RUNNING" and w, timeout=120,
                           what=f"the restarted {name} to be ready")
    assert_ready(plane, env, {name: restarted})
