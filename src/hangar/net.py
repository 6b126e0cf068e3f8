"""Whether an address can be bound on this machine right now.

Below the runtime and the CLI alike: port allocation (hangar.runtime.ports) asks before it hands
out a port, and `hangar server` asks before it starts, so a port in use fails with one clear line
instead of a traceback from uvicorn. Imports nothing but the standard library.
"""
from __future__ import annotations

import socket


def can_bind(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
