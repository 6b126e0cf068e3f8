"""A random sequence of creates, updates, deletes and control-plane restarts (SIGTERM and kill -9)
at random points of the operations in flight; the end state must be the last accepted request's.

The seed is printed and taken from HANGAR_TEST_SEED when set, so a failing sequence replays:
`HANGAR_TEST_SEED=<seed> pytest tests/e2e/test_lifecycle_random.py -s`.
"""
from __future__ import annotations

import json
import os
import random
import signal
import sqlite3

import psutil

from tests.e2e.harness import ControlPlane, wait_for

NAME = "drift"
STEPS = 8


def _operation_steps(plane: ControlPlane) -> int:
    """Steps recorded by the environment's newest operation (0 if it has none)."""
    with sqlite3.connect(plane.home / "state" / "hangar.db") as db:
        row = db.execute("SELECT o.steps FROM operations o JOIN environments e ON e.id = o.environment_id "
                         "WHERE e.name = ? ORDER BY o.id DESC LIMIT 1", (NAME,)).fetchone()
    return len(json.loads(row[0])) if row else 0


def _every_id(plane: ControlPlane) -> list[tuple[str, str | None]]:
    with sqlite3.connect(plane.home / "state" / "hangar.db") as db:
        return db.execute("SELECT id, database_name FROM environments WHERE name = ?", (NAME,)).fetchall()


def _processes_under(root: str) -> list[int]:
    return [p.pid for p in psutil.process_iter(["cwd"]) if (p.info["cwd"] or "").startswith(root)]


def test_a_random_sequence_ends_as_the_last_accepted_request(plane: ControlPlane, dags) -> None:
    seed = int(os.environ.get("HANGAR_TEST_SEED") or random.SystemRandom().randrange(2**32))
    print(f"\nlifecycle sequence seed: {seed} (HANGAR_TEST_SEED={seed} replays it)")
    rng = random.Random(seed)
    expected: str | None = None  # the last accepted request: None (no environment) or the variable's value
    done: list[str] = []
    for step in range(STEPS):
        action = rng.choice(["create", "create", "update", "update", "delete", "delete", "restart", "kill"])
        value = f"v{step}"
        if action == "create":
            response = plane.api("POST", "/api/v1/environments", json={
                "name": NAME, "dags": str(dags), "environment_variables": {"DRIFT": value}})
            accepted = response.status_code == 201
            expected = value if accepted else expected
        elif action == "update":
            response = plane.api("PATCH", f"/api/v1/environments/{NAME}",
                                 json={"environment_variables": {"DRIFT": value}})
            accepted = response.status_code == 200
            expected = value if accepted else expected
        elif action == "delete":
            response = plane.api("DELETE", f"/api/v1/environments/{NAME}")
            accepted = response.status_code == 202
            expected = None if accepted else expected
        else:
            plane.restart(signal.SIGTERM if action == "restart" else signal.SIGKILL)
            response, accepted = None, True
        assert response is None or response.status_code < 500, response.text
        done.append(f"{action}{'' if accepted else ' (refused ' + str(response.status_code) + ')'}")
        # the next action comes at a random point of whatever runs: after 0 to 5 of its steps
        target = rng.randrange(6)
        wait_for(lambda: _operation_steps(plane) >= target or plane.api(
            "GET", f"/api/v1/environments/{NAME}").json().get("status") not in ("CREATING", "UPDATING", "DELETING"),
            timeout=300, interval=0.1, what=f"step {target} of the operation after {done[-1]}")
    print("sequence:", ", ".join(done), "-> expected:", expected or "no environment")

    if expected is None:
        wait_for(lambda: plane.api("GET", f"/api/v1/environments/{NAME}").status_code == 404, timeout=300,
                 what=f"{NAME} to be gone")
    else:
        env = plane.wait(NAME)
        assert env["status"] == "AVAILABLE", (seed, done, env)
        assert env["spec"]["environment_variables"] == {"DRIFT": expected}, (seed, done, env["spec"])
    plane.restart(signal.SIGKILL)  # nothing comes back that should not
    live = _live_id(plane)
    assert (live is not None) == (expected is not None), (seed, done, live)
    with plane.postgres() as db, db.cursor() as cursor:
        for identifier, database in _every_id(plane):
            if identifier == live:
                continue
            root = str(plane.home / "environments" / identifier)
            assert _processes_under(root) == [], (seed, done, identifier)
            assert not os.path.exists(root), (seed, done, identifier)
            if database:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                assert cursor.fetchone() is None, (seed, done, database)
    if live is not None:
        env = plane.wait(NAME)
        assert env["status"] == "AVAILABLE" and env["spec"]["environment_variables"] == {"DRIFT": expected}, env
        assert len(env["components"]) == 4, (seed, done, env["components"])
        plane.delete(NAME)


def _live_id(plane: ControlPlane) -> str | None:
    with sqlite3.connect(plane.home / "state" / "hangar.db") as db:
        row = db.execute("SELECT id FROM environments WHERE name = ? AND status != 'DELETED'", (NAME,)).fetchone()
    return row[0] if row else None
