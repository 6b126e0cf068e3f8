"""Environments created at the same moment never get the same ports."""
from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import pytest

from hangar.domain.status import Status
from hangar.reconciler import port_claims
from hangar.runtime import ports
from hangar.store import repository
from hangar.store.db import Store, open_store
from hangar.store.models import EnvironmentRow, utcnow

_ids = itertools.count(1)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(tmp_path / "s.db")


def new_env(store: Store) -> str:
    env_id = f"00000000-0000-0000-0000-{next(_ids):012d}"
    with store.session() as session:
        session.add(EnvironmentRow(
            id=env_id, name=f"env{env_id[-6:]}", status=Status.CREATING, status_reason="queued", revision=1, ports={},
            database_name=None, created_at=utcnow(), last_update_status="PENDING", last_update_at=utcnow(),
            last_update_revision=1,
        ))
    return env_id


def test_simultaneous_claims_get_different_ports(store, monkeypatch):
    # every probe of the host is slow, as on a loaded machine: without the lock both
    # claims read the same taken set and both pick the first free ports
    monkeypatch.setattr(ports, "can_bind", lambda host, port: time.sleep(0.02) or True)
    envs = [new_env(store) for _ in range(4)]
    start = threading.Barrier(len(envs))
    claimed: dict[str, dict[str, int]] = {}

    def claim(env_id: str) -> None:
        start.wait()
        claimed[env_id] = port_claims.claim_ports(store, env_id, start=40000, end=40100)

    threads = [threading.Thread(target=claim, args=(env_id,)) for env_id in envs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [port for chosen in claimed.values() for port in chosen.values()]
    assert len(every) == 3 * len(envs)
    assert len(set(every)) == len(every)
    with store.session() as session:
        assert {env_id: dict(repository.get_by_id(session, env_id).ports) for env_id in envs} == claimed


def test_an_environment_keeps_the_ports_it_holds(store):
    env_id = new_env(store)
    first = port_claims.claim_ports(store, env_id, start=40200, end=40300)
    assert port_claims.claim_ports(store, env_id, start=40200, end=40300) == first
