"""Maintenance end to end: a requested runtime rebuild waits for the weekly window, then runs
in it (AVAILABLE -> MAINTENANCE -> AVAILABLE), replacing the components on a new runtime while
DAGs keep running.

The session's control plane checks windows every second, and the test waits for the checks
it shows (last_checked_at), not for a time."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.e2e.harness import ControlPlane, wait_for

pytestmark = pytest.mark.e2e

DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


def _slot(at: datetime) -> str:
    """The half-hour window start at or before `at`, as DAY:HH:MM."""
    return f"{DAYS[at.weekday()]}:{at.hour:02d}:{30 if at.minute >= 30 else 0:02d}"


def _pids(env: dict) -> dict[str, int]:
    return {c["name"]: c["pid"] for c in env["components"]}


def _maintenance(plane: ControlPlane, name: str) -> dict:
    response = plane.api("GET", f"/api/v1/environments/{name}/maintenance")
    assert response.status_code == 200, response.text
    return response.json()


def _checked_after(plane: ControlPlane, name: str, after: datetime) -> datetime | None:
    """The time of a check of the window later than `after`, once there is one."""
    checked = _maintenance(plane, name)["last_checked_at"]
    return checked and (at := datetime.fromisoformat(checked)) > after and at


def test_a_rebuild_waits_for_the_window_and_runs_in_it(plane: ControlPlane, dags: Path) -> None:
    elsewhere = _slot(datetime.now(timezone.utc) + timedelta(days=3))  # a window far from now
    created = plane.create("maint", dags, "--maintenance-window", elsewhere)
    assert created["spec"]["weekly_maintenance_window_start"] == elsewhere
    state = json.loads(plane.cli("env", "maintenance", "request", "maint", "--reason", "patched urllib3",
                                 "--json").stdout)
    assert state["pending"] and state["reason"] == "patched urllib3" and not state["in_window"]
    assert state["window_start"] == elsewhere and state["runtime_epoch"] == 0

    # outside the window nothing restarts, across two checks of the control plane after the request
    first = wait_for(lambda: _checked_after(plane, "maint", datetime.fromisoformat(state["requested_at"])),
                     timeout=120, what="a check of the window after the request")
    wait_for(lambda: _checked_after(plane, "maint", first), timeout=120, what="a second check of the window")
    env = plane.get("maint")
    assert env["status"] == "AVAILABLE" and _pids(env) == _pids(created)
    assert _maintenance(plane, "maint")["pending"]

    # the window moves to now: the rebuild starts in it
    now = _slot(datetime.now(timezone.utc))
    updated = json.loads(plane.cli("env", "update", "maint", "--maintenance-window", now, "--wait", "--json").stdout)
    assert updated["status"] in ("AVAILABLE", "MAINTENANCE")
    finished = wait_for(lambda: (s := _maintenance(plane, "maint"))["last_maintenance"]
                        and s["last_maintenance"]["outcome"] != "RUNNING" and s,
                        timeout=1200, interval=2, what="the maintenance to finish")
    assert finished["last_maintenance"]["outcome"] == "SUCCESS", finished
    assert not finished["pending"] and finished["reason"] is None and finished["runtime_epoch"] == 1

    env = plane.get("maint")
    assert env["status"] == "AVAILABLE"
    assert env["running_revision"] == updated["running_revision"]  # the same revision, on a new runtime
    assert all(c["pid"] != _pids(created)[c["name"]] for c in env["components"])
    events = json.loads(plane.cli("env", "events", "maint", "--json").stdout)
    moves = [(e["previous"], e["status"]) for e in events]
    assert ("AVAILABLE", "MAINTENANCE") in moves and ("MAINTENANCE", "AVAILABLE") in moves
    started = next(e for e in events if e["status"] == "MAINTENANCE")
    assert "patched urllib3" in started["reason"]
    assert plane.airflow("maint").run_dag("hello_taskflow") == "success"

    # the rebuilt runtime stays in use: a plain text check shows it
    shown = plane.cli("env", "maintenance", "show", "maint").stdout
    assert "pending        no" in shown and "SUCCESS" in shown
    plane.discard("maint")
