"""A second host for end-to-end tests: a Linux network namespace joined to this one by a veth pair.

`RemoteHost` makes namespace `hangar-<pid>-<n>` with one veth pair between it and the host:
the host end has 127.77.<n>.1/30, the namespace end 127.77.<n>.2/30. Commands run inside with
`popen`/`run`; their own loopback is empty, so a service on the host's 127.0.0.1 is reachable
only through a `forward`er listening on the host end.

Invariants:
- only loopback-range addresses (127.77.0.0/16) are used and the namespace has no default route,
  so nothing run inside can send a packet beyond the veth pair; IPv6 is off on both ends, so
  not even link-local chatter crosses it;
- 127/8 addresses are martian on any device but `lo` unless the device has `route_localnet=1`,
  so both veth ends get it (the host's own devices are not touched);
- `<n>` is taken under a lock among the addresses no veth holds yet, so test sessions run side
  by side never share one;
- leaving the context kills every process in the namespace and deletes it and the veth pair;
  namespaces left by a process that died without cleaning up are deleted on the next start.

Needs root and iproute2 (`ip`), and `unshare` from util-linux: each command gets its own UTS
namespace with the hostname `hangar-<pid>-<n>`, so a joined host reports a name of its own.
`require_netns()` skips a test when these are missing, or fails it when `CI` is set.
"""
from __future__ import annotations

import fcntl
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

SUBNET = "127.77"
LOCK = Path("/run/lock/hangar-netns.lock") if Path("/run/lock").is_dir() else Path("/tmp/hangar-netns.lock")
_NAME = re.compile(r"^hangar-(\d+)-(\d+)$")


def netns_unavailable() -> str | None:
    """Why this machine cannot make a RemoteHost, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "unshare", "sysctl"):
        if shutil.which(tool) is None:
            return f"{tool!r} is not installed (iproute2, util-linux, procps)"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"`ip netns` does not work here: {probe.stderr.strip()}"
    return None


def require_netns() -> None:
    reason = netns_unavailable()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and a second host cannot be simulated: {reason}")
    pytest.skip(f"a second host cannot be simulated: {reason}")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def _sysctl(key: str, value: str, *, netns: str | None = None) -> None:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    result = subprocess.run([*prefix, "sysctl", "-q", "-w", f"{key}={value}"], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"sysctl -w {key}={value} failed: {result.stderr.strip()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _veth_names(pid: int, n: int) -> tuple[str, str]:
    return f"hg{pid}x{n}h", f"hg{pid}x{n}n"  # at most 14 characters; Linux allows 15


def _namespaces() -> list[str]:
    return [line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line.strip()]


def _collect_leftovers() -> None:
    """Delete the namespaces and veth pairs of test processes that are gone."""
    for name in _namespaces():
        match = _NAME.match(name)
        if match and not _alive(int(match[1])):
            _ip("link", "del", _veth_names(int(match[1]), int(match[2]))[0], check=False)
            _ip("netns", "del", name, check=False)


def _taken() -> set[int]:
    """Third octets of 127.77.<n>.0/30 held by some device."""
    listing = _ip("-o", "-4", "addr", "show", "to", f"{SUBNET}.0.0/16").stdout
    return {int(m[1]) for m in re.finditer(rf"inet {re.escape(SUBNET)}\.(\d+)\.\d+/", listing)}


class RemoteHost:
    """A network namespace that stands for another machine, reachable only over its veth pair."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.n: int | None = None
        self.name = ""
        self.host_dev = self.ns_dev = ""
        self._procs: list[subprocess.Popen] = []

    @property
    def host_address(self) -> str:
        """The host's end, where forwarders listen: 127.77.<n>.1."""
        return f"{SUBNET}.{self.n}.1"

    @property
    def address(self) -> str:
        """The namespace's end, the source address of its connections: 127.77.<n>.2."""
        return f"{SUBNET}.{self.n}.2"

    @property
    def hostname(self) -> str:
        return self.name

    def __enter__(self) -> "RemoteHost":
        LOCK.touch(exist_ok=True)
        with open(LOCK) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _collect_leftovers()
            taken = _taken()
            free = [n for n in range(1, 255) if n not in taken]
            if not free:
                raise RuntimeError(f"every {SUBNET}.<n>.0/30 is in use")
            self.n = free[0]
            self.name = f"hangar-{self.pid}-{self.n}"
            self.host_dev, self.ns_dev = _veth_names(self.pid, self.n)
            try:
                self._create()
            except BaseException:
                self.close()
                raise
        return self

    def _create(self) -> None:
        _ip("netns", "add", self.name)
        _ip("link", "add", self.host_dev, "type", "veth", "peer", "name", self.ns_dev, "netns", self.name)
        # no IPv6 and localnet routing before any link is up, so the first packet already obeys them
        _sysctl(f"net.ipv6.conf.{self.host_dev}.disable_ipv6", "1")
        _sysctl(f"net.ipv4.conf.{self.host_dev}.route_localnet", "1")
        _sysctl(f"net.ipv6.conf.{self.ns_dev}.disable_ipv6", "1", netns=self.name)
        _sysctl(f"net.ipv4.conf.{self.ns_dev}.route_localnet", "1", netns=self.name)
        _ip("addr", "add", f"{self.host_address}/30", "dev", self.host_dev)
        _ip("-n", self.name, "addr", "add", f"{self.address}/30", "dev", self.ns_dev)
        _ip("link", "set", self.host_dev, "up")
        _ip("-n", self.name, "link", "set", self.ns_dev, "up")
        _ip("-n", self.name, "link", "set", "lo", "up")

    def __exit__(self, *_exc) -> None:
        self.close()

    def argv(self, argv: Sequence[str]) -> list[str]:
        """`argv` as run inside the namespace, under the host's own hostname; it keeps its pid."""
        return ["ip", "netns", "exec", self.name, "unshare", "--uts", "--", "sh", "-c",
                'hostname "$0" && exec "$@"', self.hostname, *argv]

    def popen(self, argv: Sequence[str], *, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(self.argv(argv), env=env, **kwargs)
        self._procs.append(proc)
        return proc

    def run(self, argv: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 60,
            **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(self.argv(argv), env=env, timeout=timeout, **kwargs)

    def pids(self) -> list[int]:
        if not self.name or self.name not in _namespaces():
            return []
        return [int(pid) for pid in _ip("netns", "pids", self.name).stdout.split()]

    def close(self) -> None:
        """Kill what runs inside (TERM, then KILL after 5 s), delete the namespace and the veth pair."""
        if not self.name:
            return
        pids = self.pids()
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline:
            time.sleep(0.1)
            pids = self.pids()
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        for proc in self._procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        _ip("link", "del", self.host_dev, check=False)  # takes the namespace's end with it
        _ip("netns", "del", self.name, check=False)
        self.name = ""


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class Forwarder:
    """Accepts TCP connections on `listen` and relays each to `target`, both ways, until either end closes."""

    def __init__(self, *, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.target = target
        self._server = socket.create_server(listen, reuse_port=False)
        self._server.settimeout(0.2)
        self.address: tuple[str, int] = self._server.getsockname()[:2]
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name=f"forward {self.address}->{target}", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self.address[1]

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, upstream))
            threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        for sock in (a, b):
            sock.setblocking(False)
        selector = selectors.DefaultSelector()
        selector.register(a, selectors.EVENT_READ, b)
        selector.register(b, selectors.EVENT_READ, a)
        open_ends = 2
        try:
            while open_ends and not self._stop.is_set():
                for key, _ in selector.select(timeout=0.2):
                    source, sink = key.fileobj, key.data
                    try:
                        data = source.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        return
                    if not data:  # half-close: pass the EOF on, keep relaying the other way
                        selector.unregister(source)
                        open_ends -= 1
                        try:
                            sink.shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                        continue
                    sink.setblocking(True)
                    try:
                        sink.sendall(data)
                    except OSError:
                        return
                    finally:
                        sink.setblocking(False)
        finally:
            selector.close()
            with self._lock:
                self._conns.difference_update((a, b))
            a.close()
            b.close()

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(timeout=5)
        with self._lock:
            conns = list(self._conns)
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def __enter__(self) -> "Forwarder":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


@contextmanager
def forward(*, listen: tuple[str, int], target: tuple[str, int]) -> Iterator[Forwarder]:
    """Make `target` (a service on the host's loopback) reachable at `listen` (e.g. the host end
    of a RemoteHost). Port 0 in `listen` picks a free one: see `.address`."""
    forwarder = Forwarder(listen=listen, target=target)
    try:
        yield forwarder
    finally:
        forwarder.close()
