"""KMS key rotation and fernet key rotation on a real Airflow environment.

A connection with a password is added through Airflow's own REST API and read by a
task with BaseHook.get_connection. Rotating the environment's KMS key re-wraps data
keys only: the components keep running (same pids) and the task still reads the
connection. Rotating the fernet key restarts the components with "new,old", runs
`airflow rotate-fernet-key`, and restarts with the new key alone: the connection's
stored ciphertext changes, opens with the new key only, and the task still reads it.
"""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken


from tests.e2e.harness import ControlPlane

NAME = "rotating"
CONN_ID = "rotation_target"
PASSWORD = "pw-7Rq2-rotation-e2e-Zk9x"
DAG_ID = "read_rotation_connection"
DAG = f'''"""Reads the connection the key rotation test made and checks its password."""
from __future__ import annotations

import pendulum

try:
    from airflow.sdk import BaseHook, dag, task
except ImportError:  # Airflow 2
    from airflow.decorators import dag, task
    from airflow.hooks.base import BaseHook


@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def {DAG_ID}():
    @task
    def check() -> None:
        connection = BaseHook.get_connection("{CONN_ID}")
        if connection.password != "{PASSWORD}":
            raise ValueError("the connection's password did not decrypt to what was stored")  # never print it
        print("connection password matches")

    check()


{DAG_ID}()
'''


def read_secrets(plane: ControlPlane, name: str) -> dict[str, str]:
    return plane.secrets(name)


def _stored_password(plane: ControlPlane, env_id: str) -> bytes:
    """The connection's `_password` column as Airflow stored it in the environment's metadata database."""
    database = f"hangar_env_{env_id.replace('-', '')}"
    connection = plane.postgres(database)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT password, is_encrypted FROM connection WHERE conn_id = %s", (CONN_ID,))
            password, encrypted = cursor.fetchone()
    finally:
        connection.close()
    assert encrypted and password and PASSWORD not in password
    return password.encode()


def _wrapping(plane: ControlPlane, env_id: str) -> set[tuple[str | None, int | None]]:
    """The (KMS key id, version) pairs the environment's data keys are wrapped under."""
    with sqlite3.connect(plane.home / "state" / "hangar.db") as db:
        return set(db.execute("SELECT kms_key_id, kms_key_version FROM secrets WHERE environment_id = ?", (env_id,)))


def _pids(env: dict) -> dict[str, int]:
    return {c["name"]: c["pid"] for c in env["components"]}


def _keys(plane: ControlPlane) -> dict[str, dict]:
    return {k["key_id"]: k for k in json.loads(plane.cli("key", "list", "--json").stdout)}


def _assert_no_secret_leaked(plane: ControlPlane, values: dict[str, str]) -> None:
    texts = {
        "env get": plane.cli("env", "get", NAME, "--json").stdout,
        "events": plane.cli("env", "events", NAME, "--json").stdout,
        "key list": plane.cli("key", "list", "--json").stdout,
    }
    for path in [*plane.home.glob("environments/*/**/*"), plane.log, *plane.home.glob("*.log")]:
        if path.is_file() and path.suffix in (".log", ".cfg", ".json", ".py", ""):
            texts[str(path)] = path.read_text(errors="replace")
    texts["state"] = (plane.home / "state" / "hangar.db").read_bytes().decode("latin-1")
    for where, text in texts.items():
        for name, value in values.items():
            assert value not in text, f"secret {name} found in {where}"


def test_kms_and_fernet_rotation_keep_connections_readable(plane: ControlPlane, tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / f"{DAG_ID}.py").write_text(DAG)
    key = json.loads(plane.cli("key", "create", "--alias", "alias/e2e-rotation", "--description", "e2e", "--json").stdout)
    assert key["alias"] == "alias/e2e-rotation" and key["versions"] == 1

    # an unknown key is refused, naming it
    missing = "arn:aws:kms:us-east-1:123456789012:alias/does-not-exist"
    refused = plane.api("POST", "/api/v1/environments", json={"name": "nokey", "dags": str(dags), "kms_key": missing})
    assert refused.status_code == 400 and missing in refused.json()["error"]["message"]

    # the environment's secrets go under the customer key, named by its ARN
    response = plane.api("POST", "/api/v1/environments", json={
        "name": NAME, "dags": str(dags), "kms_key": "arn:aws:kms:us-east-1:123456789012:alias/e2e-rotation"})
    assert response.status_code == 201, response.text
    env = plane.wait(NAME)
    assert env["status"] == "AVAILABLE", env
    env_id = plane.env_id(NAME)
    before = read_secrets(plane, NAME)
    assert set(before) == {"fernet_key", "jwt_secret", "secret_key", "db_password"}
    assert _wrapping(plane, env_id) == {(key["key_id"], 1)}

    airflow = plane.airflow(NAME)
    created = airflow.request("POST", "/connections", json={
        "connection_id": CONN_ID, "conn_type": "generic", "host": "db.invalid", "login": "rotator",
        "password": PASSWORD})
    assert created.status_code == 201, created.text
    first_ciphertext = _stored_password(plane, env_id)
    assert Fernet(before["fernet_key"].encode()).decrypt(first_ciphertext).decode() == PASSWORD
    assert airflow.run_dag(DAG_ID) == "success"

    # 1. KMS key rotation: data keys re-wrapped, nothing restarts
    pids = _pids(plane.get(NAME))
    rotated = json.loads(plane.cli("key", "rotate", "alias/e2e-rotation", "--json").stdout)
    # one data key more when the environment runs as its own user: its database password
    assert (rotated["key_id"], rotated["current_version"], rotated["rewrapped"]) == (
        key["key_id"], 2, 4 if os.geteuid() == 0 else 3)
    listed = _keys(plane)[key["key_id"]]
    assert listed["versions"] == 2 and listed["rotated_at"]
    assert read_secrets(plane, NAME) == before
    assert _wrapping(plane, env_id) == {(key["key_id"], 2)}
    after_kms = plane.get(NAME)
    assert after_kms["status"] == "AVAILABLE" and _pids(after_kms) == pids
    assert airflow.run_dag(DAG_ID) == "success"
    assert _pids(plane.get(NAME)) == pids

    # 2. fernet rotation: MultiFernet restart, `airflow rotate-fernet-key`, restart with the new key alone
    result = plane.cli("env", "rotate-fernet", NAME, "--wait", "--json")
    env = json.loads(result.stdout)
    assert env["status"] == "AVAILABLE" and env["last_update"]["status"] == "SUCCESS", env
    after = read_secrets(plane, NAME)
    assert set(after) == {"fernet_key", "jwt_secret", "secret_key", "db_password"}  # the pending key is gone
    assert after["fernet_key"] != before["fernet_key"]
    assert {k: after[k] for k in ("jwt_secret", "secret_key", "db_password")} == {k: before[k] for k in ("jwt_secret", "secret_key", "db_password")}
    assert _pids(env) != pids
    events = plane.events(NAME)
    assert [e["status"] for e in events][-2:] == ["UPDATING", "AVAILABLE"]
    assert events[-1]["reason"] == "fernet key rotated"

    second_ciphertext = _stored_password(plane, env_id)
    assert second_ciphertext != first_ciphertext
    assert Fernet(after["fernet_key"].encode()).decrypt(second_ciphertext).decode() == PASSWORD
    with pytest.raises(InvalidToken):
        Fernet(before["fernet_key"].encode()).decrypt(second_ciphertext)
    airflow = plane.airflow(NAME)
    assert airflow.run_dag(DAG_ID) == "success"

    # the new fernet key went under the customer key's current version too
    assert _wrapping(plane, env_id) == {(key["key_id"], 2)}
    _assert_no_secret_leaked(plane, {
        **before, **{f"new {k}": v for k, v in after.items()}, "connection password": PASSWORD,
    })
    plane.discard(NAME)
