"""Port allocation: every environment gets its own ports, none already in use.

A port is free when no live environment holds it and it can be bound on the
host right now. The store is the record of what environments hold, so two
environments never get the same port even while one of them is stopped.
"""
from __future__ import annotations

from hangar.errors import PortInUse
from hangar.net import can_bind


def allocate(names: list[str], *, start: int, end: int, taken: set[int], host: str = "127.0.0.1") -> dict[str, int]:
    chosen: dict[str, int] = {}
    port = start
    for name in names:
        while port <= end and (port in taken or port in chosen.values() or not can_bind(host, port)):
            port += 1
        if port > end:
            raise PortInUse(f"no free port left in {start}-{end} for {name}")
        chosen[name] = port
        port += 1
    return chosen
