"""Bad input gets a clear error naming the cause, and nothing is lost."""
from __future__ import annotations

import json
import socket

import httpx
import pytest

from tests.e2e.harness import ControlPlane


def test_dag_folder_that_does_not_exist(plane: ControlPlane, tmp_path) -> None:
    missing = tmp_path / "nope"
    result = plane.cli("env", "create", "nodags", "--dags", str(missing), check=False)
    assert result.returncode != 0
    assert str(missing) in result.stderr and "does not exist" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["1abc", "has space", "x" * 81, "bad/slash"])
def test_invalid_name_is_refused(plane: ControlPlane, dags, name: str) -> None:
    response = plane.api("POST", "/api/v1/environments", json={"name": name, "dags": str(dags)})
    assert response.status_code == 400
    assert "name" in response.json()["error"]["message"]


def test_duplicate_name_is_refused_and_the_first_is_untouched(plane: ControlPlane, shared_env: str, dags) -> None:
    before = plane.get(shared_env)
    result = plane.cli("env", "create", shared_env, "--dags", str(dags), check=False)
    assert result.returncode != 0 and "already exists" in result.stderr
    env = plane.get(shared_env)
    assert env["status"] == "AVAILABLE" and env["revision"] == before["revision"]
    assert env["spec"]["dags"] == before["spec"]["dags"] != str(dags)


def test_airflow_version_that_does_not_exist(plane: ControlPlane, dags) -> None:
    result = plane.cli("env", "create", "ghost", "--dags", str(dags), "--airflow-version", "3.3.99", "--wait",
                       "--json", check=False)
    assert result.returncode != 0
    env = plane.get("ghost")
    assert env["status"] == "CREATE_FAILED"
    error = env["last_update"]["error"]
    assert error["code"] == "AIRFLOW_VERSION_NOT_FOUND"
    assert "3.3.99" in error["message"]
    plane.discard("ghost")


def test_unresolvable_requirements_fail_with_uvs_message(plane: ControlPlane, dags, tmp_path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("hangar-no-such-package-xyz==1.0\n")
    result = plane.cli("env", "create", "badreq", "--dags", str(dags), "--requirements", str(requirements), "--wait",
                       check=False)
    assert result.returncode != 0
    env = plane.get("badreq")
    assert env["status"] == "CREATE_FAILED"
    error = env["last_update"]["error"]
    assert error["code"] == "REQUIREMENTS_FAILED"
    assert "hangar-no-such-package-xyz" in error["message"] and "uv said" in error["message"]
    plane.discard("badreq")


def test_requirement_that_moves_airflow_is_refused(plane: ControlPlane, dags, tmp_path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("requests\napache-airflow==2.10.0\n")
    result = plane.cli("env", "create", "pinned", "--dags", str(dags), "--requirements", str(requirements), check=False)
    assert result.returncode != 0
    assert "line 2" in result.stderr and "apache-airflow" in result.stderr


@pytest.mark.parametrize("key", ["core.executor", "database.sql_alchemy_conn", "core.fernet_key",
                                 "core.execution_api_server_url", "core.dags_folder"])
def test_blocked_config_key_is_refused(plane: ControlPlane, dags, key: str) -> None:
    result = plane.cli("env", "create", "blocked", "--dags", str(dags), "--config", f"{key}=x", check=False)
    assert result.returncode != 0
    assert key in result.stderr and "managed by Hangar" in result.stderr
    assert plane.cli("env", "get", "blocked", check=False).returncode != 0


def test_malformed_and_unknown_fields(plane: ControlPlane, dags) -> None:
    response = plane.api("POST", "/api/v1/environments", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400
    response = plane.api("POST", "/api/v1/environments", json={"name": "x", "dags": str(dags), "colour": "red"})
    assert response.status_code == 400 and "colour" in response.json()["error"]["message"]


def test_every_call_but_health_needs_the_key(plane: ControlPlane) -> None:
    assert httpx.get(f"{plane.url}/health").status_code == 200
    assert httpx.get(f"{plane.url}/api/v1/environments").status_code == 401
    bad = httpx.get(f"{plane.url}/api/v1/environments", headers={"Authorization": "Bearer hgr_wrong"})
    assert bad.status_code == 401
    assert oct((plane.home / "admin.key").stat().st_mode & 0o777) == "0o600"


def test_update_or_delete_of_missing_environment(plane: ControlPlane, dags) -> None:
    assert plane.api("PATCH", "/api/v1/environments/missing", json={"dags": str(dags)}).status_code == 404
    assert plane.api("DELETE", "/api/v1/environments/missing").status_code == 404


def test_environment_port_taken_by_another_program_is_skipped(plane: ControlPlane, dags) -> None:
    # occupy the next ports Hangar would hand out (ports a test just freed may not bind again yet;
    # those are simply not held)
    holders = []
    start = plane.env_port_start
    for port in range(start, start + 40):
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
            holders.append(sock)
        except OSError:
            sock.close()
    held = {sock.getsockname()[1] for sock in holders}
    assert held, "could not hold any port to test with"
    try:
        plane.create("porty", dags)
        ports = set(_env_ports(plane, "porty"))
        assert not ports & held, f"Hangar handed out ports another program holds: {ports & held}"
        assert plane.airflow("porty").run_dag("hello_taskflow") == "success"
    finally:
        for sock in holders:
            sock.close()
    plane.discard("porty")


def _env_ports(plane: ControlPlane, name: str) -> list[int]:
    import sqlite3

    with sqlite3.connect(plane.home / "state" / "hangar.db") as db:
        row = db.execute("SELECT ports FROM environments WHERE name = ? AND status != 'DELETED'", (name,)).fetchone()
    return [int(p) for p in json.loads(row[0]).values()]


def test_control_plane_port_taken_by_another_program(plane: ControlPlane, tmp_path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = plane.cli("server", "--home", str(tmp_path / "h"), "--port", str(port), check=False, timeout=60)
    assert result.returncode != 0
    assert f"port {port}" in result.stderr and "already in use" in result.stderr


def _send_huge_body(plane: ControlPlane, headers: str, size: int) -> bytes:
    """Send the headers, then up to `size` bytes of body; return the first bytes of the answer."""
    chunk = b"x" * (1024 * 1024)
    with socket.create_connection(("127.0.0.1", plane.port)) as conn:
        conn.sendall(headers.encode())
        conn.settimeout(30)  # a server that stops reading stops the sending, not the test
        sent = 0
        try:
            while sent < size:
                conn.sendall(chunk)
                sent += len(chunk)
        except OSError:  # the server answered and closed the connection
            pass
        return conn.recv(200)


@pytest.mark.parametrize("auth", ["", "Authorization: Bearer {admin}\r\n"])
def test_a_400_mb_body_is_refused_without_being_held(plane: ControlPlane, auth: str) -> None:
    """No key: 401 before the body is read; the admin key: 413 at the declared length. Either
    way the server's memory grows by less than 50 MB."""
    import psutil

    server = psutil.Process(plane.process.pid)
    before = server.memory_info().rss
    size = 400 * 1024 * 1024
    headers = (f"POST /api/v1/environments HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"{auth.format(admin=plane.key)}Content-Length: {size}\r\n\r\n")
    answer = _send_huge_body(plane, headers, size)
    assert answer.split(b"\r\n")[0] == (b"HTTP/1.1 413 Request Entity Too Large" if auth
                                        else b"HTTP/1.1 401 Unauthorized")
    grown = server.memory_info().rss - before
    assert grown < 50 * 1024 * 1024, f"the server's RSS grew by {grown / 2**20:.0f} MiB"
    assert plane.api("GET", "/health").status_code == 200
