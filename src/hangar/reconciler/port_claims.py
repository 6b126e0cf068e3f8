"""Giving an environment its ports, one environment at a time.

Reading the ports live environments hold and recording the new choice happen
under one lock, so two environments created at the same moment never pick the
same free port (each would otherwise see the other's choice only after both
had committed).
"""
from __future__ import annotations

import threading

from hangar.backend.components import PORT_NAMES
from hangar.runtime import ports
from hangar.store import repository
from hangar.store.db import Store

_CLAIMING = threading.Lock()


def claim_ports(store: Store, env_id: str, *, start: int, end: int) -> dict[str, int]:
    """The environment's ports: the ones it holds, or new ones recorded before the lock is let go."""
    with _CLAIMING, store.session() as session:
        env = repository.get_by_id(session, env_id)
        if not env.ports:
            env.ports = ports.allocate(PORT_NAMES, start=start, end=end, taken=repository.used_ports(session))
        return dict(env.ports)
