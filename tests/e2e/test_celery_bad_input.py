"""Bad scale-out input gets a clear error and changes nothing: an unreachable broker (on create,
and on an update of a running environment, which stays on its executor), no broker at all,
worker and scheduler counts out of range or crossed."""
from __future__ import annotations

import json

import pytest

from tests.e2e.celery import CELERY_DAGS, control_plane, dispose

pytestmark = pytest.mark.e2e

NOWHERE = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture(scope="module")
def unreachable():
    plane = control_plane(NOWHERE, cooldown=15, port_offset=13)
    yield plane
    dispose(plane)


def _fails(plane, *args: str) -> str:
    result = plane.cli(*args, check=False)
    assert result.returncode != 0, result.stdout
    return result.stderr + result.stdout


def test_create_with_unreachable_broker_names_the_brokers_error(unreachable):
    message = _fails(unreachable, "env", "create", "nobroker", "--dags", str(CELERY_DAGS), "--executor", "celery")
    assert "BROKER_UNREACHABLE" in message or "cannot be reached" in message
    assert "redis://127.0.0.1:1/0" in message and "Connection refused" in message
    assert "does not exist" in _fails(unreachable, "env", "get", "nobroker")


def test_update_to_celery_with_unreachable_broker_keeps_the_running_executor(unreachable):
    created = unreachable.create("stays", CELERY_DAGS)
    assert created["status"] == "AVAILABLE" and created["executor"] == "local"
    pids = {c["name"]: c["pid"] for c in created["components"]}
    message = _fails(unreachable, "env", "update", "stays", "--executor", "celery", "--wait")
    assert "cannot be reached" in message and "Connection refused" in message
    after = unreachable.get("stays")
    assert after["status"] == "AVAILABLE" and after["executor"] == "local" and after["workers"] is None
    assert after["revision"] == created["revision"]
    assert {c["name"]: c["pid"] for c in after["components"]} == pids
    assert unreachable.airflow("stays").run_dag("queued", timeout=300) == "success"
    unreachable.delete("stays")


def test_celery_without_a_broker_says_how_to_give_one(plane):
    message = _fails(plane, "env", "create", "nobroker", "--dags", str(CELERY_DAGS), "--executor", "celery")
    assert "CELERY_BROKER_NOT_CONFIGURED" in message or "--celery-broker-url" in message
    assert "--celery-broker-url" in message


@pytest.mark.parametrize(("args", "expected"), [
    (("--min-workers", "5", "--max-workers", "2"), "min_workers 5 is above max_workers 2"),
    (("--max-workers", "26"), "less than or equal to 25"),
    (("--min-workers", "0"), "greater than or equal to 1"),
    (("--schedulers", "6"), "less than or equal to 5"),
    (("--schedulers", "0"), "greater than or equal to 1"),
    (("--worker-concurrency", "0"), "greater than or equal to 1"),
    (("--executor", "kubernetes"), "'local' or 'celery'"),
    (("--class", "mw1.micro", "--max-workers", "2"), "mw1.micro allows at most 1 workers"),
])
def test_counts_out_of_range_are_refused_before_anything_is_stored(plane, args, expected):
    message = _fails(plane, "env", "create", "badcount", "--dags", str(CELERY_DAGS), *args)
    assert expected in message, message
    listed = json.loads(plane.cli("env", "list", "--json").stdout)
    assert "badcount" not in {e["name"] for e in listed}
