"""Snapshots end to end: take one while the environment serves, clone it into a new
environment that has the earlier runs and runs DAGs, restore it in place, refuse a
tampered archive without touching the target, and take scheduled snapshots with retention.

The session's control plane checks snapshot schedules every second, so a scheduled snapshot
starts within a second of its cron time. The schedule is every 15 seconds (cron's optional sixth
field, as croniter reads it): the same loop, due times and retention as a schedule in minutes,
without waiting whole minutes for two of its times to pass.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import private_folder
from tests.e2e.harness import EXAMPLES, Airflow, ControlPlane, wait_for

pytestmark = pytest.mark.e2e

DAG = "hello_taskflow"
SCHEDULE = "* * * * * */15"


@pytest.fixture(scope="module", autouse=True)
def scheduled_env(plane: ControlPlane) -> Iterator[str]:
    """An environment with a snapshot every 15 seconds, asked for before the module's first test,
    so its first cron times pass while that test runs rather than in a wait of their own."""
    folder = private_folder("hangar-e2e-snapsched-")
    shutil.copytree(EXAMPLES, folder / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    response = plane.api("POST", "/api/v1/environments", json={
        "name": "snapsched", "dags": str(folder / "dags"), "snapshot_schedule": SCHEDULE, "snapshot_retention": 1})
    assert response.status_code == 201, response.text
    yield "snapsched"
    plane.discard("snapsched")
    plane.wait_discarded()  # its DAGs folder goes next
    shutil.rmtree(folder, ignore_errors=True)


def _pids(env: dict) -> dict[str, int]:
    return {c["name"]: c["pid"] for c in env["components"]}


def _serving(airflow: Airflow) -> Airflow:
    """Once its REST API answers; other test sessions on this machine may briefly hold a port it was given."""

    def answers() -> bool:
        try:
            return airflow.request("GET", "/version").status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(answers, timeout=120, interval=1, what=f"{airflow.base} to answer")
    return airflow


def _snapshots(plane: ControlPlane, name: str) -> list[dict]:
    return json.loads(plane.cli("env", "snapshot", "list", name, "--json").stdout)


def _snapshot_unless_busy(plane: ControlPlane, name: str) -> dict | None:
    taken = plane.cli("env", "snapshot", "create", name, "--wait", "--json", check=False)
    if taken.returncode != 0 and "ENVIRONMENT_BUSY" in taken.stderr + taken.stdout:
        return None
    assert taken.returncode == 0, taken.stderr
    return json.loads(taken.stdout)


def _archive(plane: ControlPlane, snapshot_id: str) -> Path:
    (path,) = plane.home.glob(f"snapshots/*/{snapshot_id}.tar.gz")
    return path


def test_snapshot_clone_restore_and_tampering(plane: ControlPlane, dags: Path) -> None:
    created = plane.create("snapsrc", dags)
    source = plane.airflow("snapsrc")
    first_run = source.trigger(DAG)
    assert source.wait_for_run(DAG, first_run) == "success"

    # taking a snapshot leaves every component running
    taken = json.loads(plane.cli("env", "snapshot", "create", "snapsrc", "--wait", "--json").stdout)
    assert taken["kind"] == "manual" and taken["revision"] == created["revision"]
    assert [s["id"] for s in _snapshots(plane, "snapsrc")] == [taken["id"]]
    env = plane.get("snapsrc")
    assert env["status"] == "AVAILABLE" and _pids(env) == _pids(created)
    events = json.loads(plane.cli("env", "events", "snapsrc", "--json").stdout)
    assert [e["status"] for e in events][-2:] == ["CREATING_SNAPSHOT", "AVAILABLE"]

    # a clone: a new environment with the snapshot's runs, which runs DAGs of its own
    clone = json.loads(plane.cli("env", "snapshot", "restore", "snapsrc", taken["id"], "--into", "snapclone",
                                 "--wait", "--json").stdout)
    assert clone["status"] == "AVAILABLE", clone
    assert clone["spec"]["dags"].endswith(f"/restored/{taken['id']}/dags")
    cloned = _serving(plane.airflow("snapclone"))
    cloned.wait_for_dag(DAG)
    earlier = cloned.request("GET", f"/dags/{DAG}/dagRuns/{first_run}")
    assert earlier.status_code == 200 and earlier.json()["state"] == "success", earlier.text
    assert cloned.run_dag(DAG) == "success"
    plane.discard("snapclone")

    # in place: a run made after the snapshot is gone, the earlier one is back, DAGs run
    later_run = source.trigger(DAG)
    assert source.wait_for_run(DAG, later_run) == "success"
    restored = json.loads(plane.cli("env", "snapshot", "restore", "snapsrc", taken["id"], "--wait", "--json").stdout)
    assert restored["status"] == "AVAILABLE" and restored["revision"] == created["revision"] + 1, restored
    source = _serving(plane.airflow("snapsrc"))
    source.wait_for_dag(DAG)
    assert source.request("GET", f"/dags/{DAG}/dagRuns/{first_run}").json()["state"] == "success"
    assert source.request("GET", f"/dags/{DAG}/dagRuns/{later_run}").status_code == 404
    assert source.run_dag(DAG) == "success"

    # a flipped byte: refused before anything stops, into the same or a new environment
    archive = _archive(plane, taken["id"])
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    archive.write_bytes(bytes(data))
    before = plane.get("snapsrc")
    for extra in ((), ("--into", "snapbad")):
        refused = plane.cli("env", "snapshot", "restore", "snapsrc", taken["id"], *extra, "--wait", check=False)
        assert refused.returncode == 1
        assert "SNAPSHOT_CORRUPTED" in refused.stderr and "sha256" in refused.stderr, refused.stderr
    after = plane.get("snapsrc")
    assert after["status"] == "AVAILABLE" and after["revision"] == before["revision"]
    assert _pids(after) == _pids(before)
    assert source.request("GET", f"/dags/{DAG}").status_code == 200
    assert plane.cli("env", "get", "snapbad", check=False).returncode == 1  # no clone was made
    response = plane.api("POST", f"/api/v1/environments/snapsrc/snapshots/{taken['id']}/restore", json={})
    assert response.status_code == 409 and response.json()["error"]["code"] == "SNAPSHOT_CORRUPTED"

    plane.cli("env", "snapshot", "delete", "snapsrc", taken["id"])
    assert _snapshots(plane, "snapsrc") == [] and not archive.exists()
    missing = plane.cli("env", "snapshot", "delete", "snapsrc", taken["id"], check=False)
    assert missing.returncode == 1 and "has no snapshot" in missing.stderr
    plane.discard("snapsrc")


def test_scheduled_snapshots_keep_the_newest(plane: ControlPlane, scheduled_env: str) -> None:
    """Scheduled snapshots one cron time (15 s) apart, with retention 1. The environment was
    asked for before the module's first test ran."""
    created = plane.wait("snapsched", timeout=600)
    assert created["status"] == "AVAILABLE" and created["spec"]["snapshot_schedule"] == SCHEDULE
    assert created["spec"]["snapshot_retention"] == 1

    def scheduled() -> list[str]:
        listed = plane.api("GET", "/api/v1/environments/snapsched/snapshots")
        assert listed.status_code == 200, listed.text
        return [s["id"] for s in listed.json() if s["kind"] == "scheduled"]

    # the newest, listed first (for a moment the one retention is about to remove may be listed too)
    first = wait_for(scheduled, timeout=150, interval=1, what="a scheduled snapshot")[0]
    first_archive = _archive(plane, first)
    # a manual one between the two scheduled ones (refused while a scheduled one is being taken)
    manual = wait_for(lambda: _snapshot_unless_busy(plane, "snapsched"), timeout=120, interval=1,
                      what="a manual snapshot")
    # the next scheduled one replaces the first: retention 1 keeps the newest scheduled snapshot only
    (second,) = wait_for(lambda: (ids := scheduled()) and first not in ids and ids, timeout=150, interval=1,
                         what="the first scheduled snapshot to give way to the next")
    assert second != first and not first_archive.exists()
    assert manual["id"] in [s["id"] for s in _snapshots(plane, "snapsched")]  # retention never takes a manual one

    # the schedule goes (refused while a snapshot is being taken), then the environment
    wait_for(lambda: plane.api("PATCH", "/api/v1/environments/snapsched",
                               json={"snapshot_schedule": None}).status_code == 200,
             timeout=120, interval=1, what="the schedule to be removed")
    env = json.loads(plane.cli("env", "wait", "snapsched", "--json").stdout)
    assert env["status"] == "AVAILABLE" and env["spec"]["snapshot_schedule"] is None
