"""Celery environments on RabbitMQ: two schedulers, one killed with -9 during a run (no run
fails, the environment stays AVAILABLE); the broker restarted while tasks are queued (none is
lost); two environments on the same broker never take each other's tasks.

Tasks last until the test writes their release file, once it has seen what it waits for
(a scheduler killed, the broker back, both environments running tasks), not for a time."""
from __future__ import annotations

import os
import signal
import subprocess

import pytest

from tests.e2e.celery import (
    CELERY_DAGS, RABBITMQ, ReleaseFile, StatusWatch, control_plane, delete_all, dispose, failures, require_service,
    task_states, trigger_held, wait_until,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def plane():
    require_service("127.0.0.1", 5672, "RabbitMQ")
    plane = control_plane(RABBITMQ, cooldown=15, port_offset=7)
    # both environments the module uses are asked for at once, so they are created side by side
    plane.cli("env", "create", "sched", "--dags", str(CELERY_DAGS), "--executor", "celery", "--schedulers", "2",
              "--min-workers", "1", "--max-workers", "2")
    plane.cli("env", "create", "slot", "--dags", str(CELERY_DAGS), "--executor", "celery", "--min-workers", "1",
              "--max-workers", "1", "--worker-concurrency", "1",
              # more task slots than the one worker runs, so that tasks wait in the broker
              "--config", "core.parallelism=8")
    yield plane
    delete_all(plane)
    dispose(plane)


@pytest.fixture(scope="module")
def two_schedulers(plane):
    created = plane.wait("sched")
    assert created["status"] == "AVAILABLE", created
    names = [c["name"] for c in created["components"]]
    assert "scheduler" in names and "scheduler-2" in names
    return "sched"


@pytest.fixture(scope="module")
def one_slot(plane):
    created = plane.wait("slot")
    assert created["status"] == "AVAILABLE", created
    assert created["workers"]["concurrency"] == 1
    return "slot"


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def test_two_schedulers_one_killed_during_a_run(plane, two_schedulers):
    """The second step holds until the scheduler is killed; the steps after it are scheduled then."""
    env = two_schedulers
    airflow = plane.airflow(env)
    with ReleaseFile() as release:
        run_id = trigger_held(airflow, "steady", release)
        wait_until(lambda: [t["state"] for t in task_states(airflow, "steady", run_id)[:2]] == ["success", "running"],
                   timeout=240, what="the first step to finish and the second to run")
        victim = next(c for c in plane.get(env)["components"] if c["name"] == "scheduler")
        with StatusWatch(plane, env) as watch:
            os.kill(victim["pid"], signal.SIGKILL)
            release.write()
            state = airflow.wait_for_run("steady", run_id, timeout=400)
            assert state == "success", failures(airflow, "steady", run_id)
            wait_until(lambda: next(c for c in plane.get(env)["components"] if c["name"] == "scheduler")["state"]
                       == "RUNNING", timeout=120, what="the killed scheduler to be restarted")
    states = task_states(airflow, "steady", run_id)
    assert len(states) == 4 and {t["state"] for t in states} == {"success"}
    assert watch.seen == {"AVAILABLE"}, watch.seen
    restarted = next(c for c in plane.get(env)["components"] if c["name"] == "scheduler")
    assert restarted["pid"] != victim["pid"] and restarted["restarts"] >= 1


def test_broker_restarted_while_tasks_are_queued(plane, one_slot):
    """One task holds the only slot while three wait in the broker, which stops and starts; released
    once the broker is back, all four run."""
    env = one_slot
    airflow = plane.airflow(env)
    with ReleaseFile() as release:
        run_id = trigger_held(airflow, "queued", release)
        wait_until(lambda: sorted(str(t["state"]) for t in task_states(airflow, "queued", run_id))
                   == ["queued"] * 3 + ["running"], timeout=240, what="one task running and three queued in the broker")
        _rabbitmqctl("stop_app")
        try:
            require_down = subprocess.run(["rabbitmqctl", "list_queues"], capture_output=True, timeout=60)
            assert require_down.returncode != 0  # the broker is really down
        finally:
            _rabbitmqctl("start_app")
        release.write()
        state = airflow.wait_for_run("queued", run_id, timeout=600)
        assert state == "success", failures(airflow, "queued", run_id)
    states = task_states(airflow, "queued", run_id)
    assert len(states) == 4 and {t["state"] for t in states} == {"success"}
    assert plane.get(env)["status"] == "AVAILABLE"


def test_environments_sharing_the_broker_keep_their_own_tasks(plane, two_schedulers, one_slot):
    """Both run tasks at once on one broker (held until each has one running): a task taken by the
    other environment's worker would fail there (the DAG run does not exist in its database)."""
    first, second = plane.airflow(two_schedulers), plane.airflow(one_slot)
    with ReleaseFile() as release:
        runs = [(first, trigger_held(first, "queued", release)), (second, trigger_held(second, "queued", release))]
        wait_until(lambda: all(any(t["state"] == "running" for t in task_states(airflow, "queued", run_id))
                               for airflow, run_id in runs), timeout=240, what="both environments to run a task")
        release.write()
        for airflow, run_id in runs:
            state = airflow.wait_for_run("queued", run_id, timeout=600)
            assert state == "success", failures(airflow, "queued", run_id)
            assert {t["state"] for t in task_states(airflow, "queued", run_id)} == {"success"}
    queues = subprocess.run(["rabbitmqctl", "list_queues", "name"], capture_output=True, text=True, timeout=60).stdout
    assert sum(1 for line in queues.splitlines() if line.startswith("hangar.")) >= 2
