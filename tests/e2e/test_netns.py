"""The second-host fixture: what runs in a RemoteHost reaches the host's loopback services only
through a forwarder, has a hostname of its own, and leaves nothing behind."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.e2e.harness import free_port
from tests.e2e.netns import RemoteHost, _ip, _namespaces, forward, require_netns

REDIS = ("127.0.0.1", 6379)


@pytest.fixture
def remote() -> RemoteHost:
    require_netns()
    with RemoteHost() as host:
        yield host


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = f"hello {self.client_address[0]}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args) -> None:
        pass


def serve_http(host: str, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def python_in(remote: RemoteHost, code: str) -> subprocess.CompletedProcess:
    return remote.run([sys.executable, "-c", code], timeout=30)


def fetch(url: str) -> str:
    """Python that prints the body at `url`."""
    return f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=10).read().decode())"


def require_redis() -> None:
    try:
        socket.create_connection(REDIS, timeout=2).close()
    except OSError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis on 127.0.0.1:6379 is required in CI and unreachable: {exc}")
        pytest.skip(f"Redis on 127.0.0.1:6379 is unreachable: {exc}")


def test_an_http_server_on_the_host_is_reached_through_a_forwarder(remote):
    port = free_port()
    server = serve_http("127.0.0.1", port)
    try:
        with forward(listen=(remote.host_address, 0), target=("127.0.0.1", port)) as forwarder:
            url = f"http://{remote.host_address}:{forwarder.port}/"
            if shutil.which("curl"):
                curl = remote.run(["curl", "-sS", "-m", "10", url])
                assert curl.returncode == 0, curl.stderr
                assert curl.stdout == "hello 127.0.0.1"  # the server sees the forwarder
            fetched = python_in(remote, fetch(url))
            assert fetched.returncode == 0, fetched.stderr
            assert fetched.stdout.strip() == "hello 127.0.0.1"
            # without the forwarder, the same port on the host's loopback is out of reach
            direct = python_in(remote, f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5)")
            assert direct.returncode != 0 and "ConnectionRefusedError" in direct.stderr
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_on_the_host_end_sees_the_namespace_address(remote):
    server = serve_http(remote.host_address, 0)
    try:
        url = f"http://{remote.host_address}:{server.server_address[1]}/"
        fetched = python_in(remote, fetch(url))
        assert fetched.returncode == 0, fetched.stderr
        assert fetched.stdout.strip() == f"hello {remote.address}"
    finally:
        server.shutdown()
        server.server_close()


def test_redis_on_the_host_is_reached_through_a_forwarder_and_not_otherwise(remote):
    require_redis()
    ping = ("import socket, sys; s = socket.create_connection((sys.argv[1], 6379), timeout=5); "
            "s.sendall(b'PING\\r\\n'); print(s.recv(64).decode().strip())")
    with forward(listen=(remote.host_address, REDIS[1]), target=REDIS):
        through = remote.run([sys.executable, "-c", ping, remote.host_address], timeout=30)
        assert through.returncode == 0, through.stderr
        assert through.stdout.strip() == "+PONG"
        if shutil.which("redis-cli"):
            cli = remote.run(["redis-cli", "-h", remote.host_address, "-p", "6379", "PING"])
            assert cli.stdout.strip() == "PONG", cli.stderr
        # the namespace's own 127.0.0.1 has nothing on 6379
        own = remote.run([sys.executable, "-c", ping, "127.0.0.1"], timeout=30)
        assert own.returncode != 0 and "ConnectionRefusedError" in own.stderr


def test_the_namespace_has_no_way_out_but_the_veth_pair(remote):
    routes = remote.run(["ip", "-4", "route", "show"]).stdout
    assert "default" not in routes
    assert routes.split()[:1] == [f"{remote.host_address.rsplit('.', 1)[0]}.0/30"]
    # a route lookup only: nothing is sent
    lookup = remote.run(["ip", "route", "get", "1.1.1.1"])
    assert lookup.returncode != 0 and "unreachable" in lookup.stderr.lower()
    links = remote.run(["ip", "-o", "link", "show"]).stdout
    assert sorted(line.split(":")[1].strip().split("@")[0] for line in links.splitlines()) == sorted(["lo", remote.ns_dev])
    assert remote.run(["cat", f"/proc/sys/net/ipv6/conf/{remote.ns_dev}/disable_ipv6"]).stdout.strip() == "1"


def test_commands_run_under_a_hostname_of_their_own(remote):
    named = remote.run(["hostname"])
    assert named.stdout.strip() == remote.hostname == remote.name
    assert remote.hostname != socket.gethostname()
    assert python_in(remote, "import socket; print(socket.gethostname())").stdout.strip() == remote.hostname


def test_two_hosts_get_their_own_addresses():
    require_netns()
    with RemoteHost() as first, RemoteHost() as second:
        assert first.n != second.n
        assert {first.address, second.address, first.host_address, second.host_address} == {
            f"127.77.{first.n}.1", f"127.77.{first.n}.2", f"127.77.{second.n}.1", f"127.77.{second.n}.2"}
        server = serve_http(first.host_address, 0)
        try:  # the second host cannot reach the first's end: its only route is its own /30
            url = f"http://{first.host_address}:{server.server_address[1]}/"
            other = python_in(second, f"import urllib.request; urllib.request.urlopen({url!r}, timeout=5)")
            assert other.returncode != 0
        finally:
            server.shutdown()
            server.server_close()


def test_leaving_kills_what_runs_inside_and_removes_everything():
    require_netns()
    with RemoteHost() as host:
        name, host_dev = host.name, host.host_dev
        sleeper = host.popen(["sleep", "300"])
        stubborn = host.popen(["sh", "-c", "trap '' TERM; sleep 300 & wait"])
        assert sleeper.poll() is None and stubborn.poll() is None
        assert host.pids()
    assert sleeper.wait(timeout=10) is not None and stubborn.wait(timeout=10) is not None
    assert name not in _namespaces()
    assert _ip("link", "show", host_dev, check=False).returncode != 0
