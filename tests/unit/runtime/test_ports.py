"""Port allocation skips ports held by environments and ports bound on the host."""
from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from hangar.errors import PortInUse
from hangar.runtime.ports import allocate, can_bind


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A real listening socket on an OS-chosen loopback port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


def port_of(sock: socket.socket) -> int:
    return sock.getsockname()[1]


def test_can_bind_sees_a_listening_socket(listener):
    assert can_bind("127.0.0.1", port_of(listener)) is False


def test_can_bind_sees_a_wildcard_listener():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        assert can_bind("127.0.0.1", sock.getsockname()[1]) is False


def test_can_bind_a_port_that_was_just_released():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert can_bind("127.0.0.1", port) is True


def test_allocate_skips_a_bound_port(listener):
    bound = port_of(listener)
    chosen = allocate(["web"], start=bound, end=min(bound + 50, 65535), taken=set())
    assert chosen["web"] != bound
    assert bound < chosen["web"] <= bound + 50


def test_allocate_skips_taken_ports_and_never_repeats(listener):
    bound = port_of(listener)
    start, end = bound, min(bound + 60, 65535)
    taken = {bound + 1, bound + 2, bound + 4}
    names = ["web", "worker_logs", "trigger_logs"]
    chosen = allocate(names, start=start, end=end, taken=taken)
    assert list(chosen) == names
    ports = list(chosen.values())
    assert len(set(ports)) == len(ports)
    assert ports == sorted(ports)
    assert all(start <= p <= end for p in ports)
    assert not (set(ports) & taken)
    assert bound not in ports


def test_allocate_uses_the_lowest_free_ports_in_order():
    # ports held by environments are skipped even when nothing is bound on them
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
    candidates = [p for p in range(base, min(base + 40, 65536)) if can_bind("127.0.0.1", p)]
    if len(candidates) < 4:
        pytest.skip("not enough free loopback ports near the probe port")
    taken = {candidates[0], candidates[2]}
    chosen = allocate(["a", "b"], start=candidates[0], end=candidates[-1], taken=taken)
    assert chosen == {"a": candidates[1], "b": candidates[3]}


def test_end_of_range_is_inclusive():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert allocate(["web"], start=port, end=port, taken=set()) == {"web": port}


def test_exhausted_by_a_bound_port_names_the_range(listener):
    bound = port_of(listener)
    with pytest.raises(PortInUse) as excinfo:
        allocate(["web"], start=bound, end=bound, taken=set())
    assert f"{bound}-{bound}" in excinfo.value.message
    assert "web" in excinfo.value.message
    assert excinfo.value.code == "PORT_IN_USE"


def test_exhausted_by_taken_ports_names_the_range_and_the_component():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
    start, end = base, base + 2
    with pytest.raises(PortInUse) as excinfo:
        allocate(["web", "worker_logs"], start=start, end=end, taken={start, start + 1, start + 2})
    assert f"{start}-{end}" in excinfo.value.message
    assert "web" in excinfo.value.message


def test_exhausted_part_way_names_the_first_component_without_a_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(PortInUse) as excinfo:
        allocate(["web", "worker_logs"], start=port, end=port, taken=set())
    assert "worker_logs" in excinfo.value.message
    assert f"{port}-{port}" in excinfo.value.message


def test_empty_range_raises():
    with pytest.raises(PortInUse):
        allocate(["web"], start=30010, end=30009, taken=set())
