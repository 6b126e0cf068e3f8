"""Worker tokens and joined hosts against a real control plane: the CLI's answers, and the
heartbeat route as a host on another machine (a RemoteHost) reaches it."""
from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import ControlPlane, free_port, wait_for
from tests.e2e.netns import RemoteHost, forward, require_netns

LOST_SECONDS = 15
# what a joined host sends: a token from argv[2], a body from argv[3]; prints the status and the answer
SEND = """\
import json, sys, urllib.error, urllib.request
request = urllib.request.Request(sys.argv[1], data=sys.argv[3].encode(), method="POST", headers={
    "Content-Type": "application/json", "Authorization": "Bearer " + sys.argv[2]})
try:
    with urllib.request.urlopen(request, timeout=10) as answer:
        print(answer.status, answer.read().decode())
except urllib.error.HTTPError as exc:
    print(exc.code, exc.read().decode())
"""

HEARTBEAT = {"hostname": "edge-1", "concurrency": 4, "state": "RUNNING", "running_tasks": 0, "workers": []}


def test_a_local_environment_is_refused_a_worker_token(plane: ControlPlane, shared_env: str) -> None:
    name = shared_env  # a LocalExecutor environment
    refused = plane.cli("worker", "token", "create", name, check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: environment '{name}' uses the local executor")
    assert len(refused.stderr.strip().splitlines()) == 1
    assert json.loads(plane.cli("worker", "token", "list", name, "--json").stdout) == []
    assert json.loads(plane.cli("worker", "list", name, "--json").stdout) == []
    assert f"no host has joined {name}" in plane.cli("worker", "list", name).stdout
    missing = plane.cli("worker", "list", "ghost", check=False)
    assert missing.returncode == 1 and missing.stderr.strip() == "error: environment 'ghost' does not exist"
    revoke = plane.cli("worker", "token", "revoke", name, "wt_000000000000", check=False)
    assert revoke.returncode == 1 and "has no worker token 'wt_000000000000'" in revoke.stderr

    path = f"/api/v1/environments/{name}/workers/heartbeat"
    for key in ("hwt_guessed", plane.key):  # neither a made-up token nor the admin key opens it
        response = httpx.post(f"{plane.url}{path}", json=HEARTBEAT, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "WORKER_TOKEN_INVALID"


def send(host: RemoteHost, url: str, token: str, body: dict) -> tuple[int, dict]:
    answered = host.run([sys.executable, "-c", SEND, url, token, json.dumps(body)], timeout=30)
    assert answered.returncode == 0, answered.stderr
    status, _, text = answered.stdout.strip().partition(" ")
    return int(status), json.loads(text)


def hosts(plane: ControlPlane) -> list[dict]:
    response = plane.api("GET", "/api/v1/environments/joined/workers")
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def celery_plane() -> ControlPlane:
    """A control plane of its own with a broker, so it can make Celery environments, and a short LOST threshold."""
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=2).close()
    except OSError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis on 127.0.0.1:6379 is required in CI and unreachable: {exc}")
        pytest.skip(f"Redis on 127.0.0.1:6379 is unreachable: {exc}")
    home = Path(tempfile.mkdtemp(prefix="hangar-e2e-workers-"))
    home.chmod(0o755)
    control = ControlPlane(home=home, port=free_port(), env_port_start=10000 + ((os.getpid() + 5) % 15) * 1000,
                           extra_env={"HANGAR_CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
                                      "HANGAR_WORKER_LOST_SECONDS": str(LOST_SECONDS)})
    control.start()
    yield control
    control.cleanup()
    shutil.rmtree(home, ignore_errors=True)


def test_a_host_in_another_namespace_reaches_the_heartbeat_route(plane: ControlPlane) -> None:
    require_netns()
    with RemoteHost() as host, forward(listen=(host.host_address, 0), target=("127.0.0.1", plane.port)) as hop:
        url = f"http://{host.host_address}:{hop.port}/api/v1/environments/anything/workers/heartbeat"
        status, answer = send(host, url, "hwt_guessed", HEARTBEAT)
        assert (status, answer["error"]["code"]) == (401, "WORKER_TOKEN_INVALID")


def test_a_host_joins_with_a_token_is_lost_and_is_cut_off_by_revoking(celery_plane: ControlPlane, dags) -> None:
    require_netns()
    plane = celery_plane
    plane.cli("env", "create", "joined", "--dags", str(dags), "--executor", "celery")
    try:
        created = json.loads(plane.cli("worker", "token", "create", "joined", "--label", "edge", "--json").stdout)
        token = created["token"]
        assert token.startswith("hwt_")
        listed = plane.cli("worker", "token", "list", "joined", "--json").stdout
        assert token not in listed and json.loads(listed)[0]["label"] == "edge"

        with RemoteHost() as host, forward(listen=(host.host_address, 0), target=("127.0.0.1", plane.port)) as hop:
            url = f"http://{host.host_address}:{hop.port}/api/v1/environments/joined/workers/heartbeat"
            body = {**HEARTBEAT, "hostname": host.hostname, "running_tasks": 1, "workers": [f"celery@{host.hostname}"]}
            assert send(host, url, token, body) == (200, {"accepted": True, "revoked": False,
                                                          "lost_after_seconds": LOST_SECONDS})
            (joined,) = hosts(plane)
            assert (joined["hostname"], joined["status"], joined["concurrency"], joined["running_tasks"]) == (
                host.hostname, "ACTIVE", 4, 1)
            assert joined["address"] == "127.0.0.1"  # the forwarder's side; a server on host_address would see host.address
            assert send(host, url, token, body)[0] == 200
            table = plane.cli("worker", "list", "joined").stdout
            assert host.hostname in table and "ACTIVE" in table

            wait_for(lambda: hosts(plane)[0]["status"] == "LOST", timeout=LOST_SECONDS + 20,
                     what="the silent host to be LOST")
            assert send(host, url, token, body)[0] == 200  # back
            assert hosts(plane)[0]["status"] == "ACTIVE"

            other = send(host, url.replace("/joined/", "/ghost/"), token, body)
            assert (other[0], other[1]["error"]["code"]) == (401, "WORKER_TOKEN_INVALID")

            plane.cli("worker", "token", "revoke", "joined", created["id"])
            status, answer = send(host, url, token, body)
            assert (status, answer["error"]["code"]) == (403, "WORKER_TOKEN_REVOKED")
            assert json.loads(plane.cli("worker", "list", "joined", "--json").stdout)[0]["status"] == "REVOKED"

        texts = [plane.cli("audit", "--json").stdout, plane.log.read_text(errors="replace"),
                 (plane.home / "state" / "hangar.db").read_bytes().decode("latin-1")]
        assert all(token not in text for text in texts)
    finally:
        plane.cli("env", "delete", "joined", "--wait")
