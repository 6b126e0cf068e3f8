"""Shared unit-test fixtures."""
from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hangar.backend.local import LocalBackend
from hangar.context import Context
from hangar.crypto import Envelope
from hangar.logstore.store import LogStore
from hangar.runtime.embedded_postgres import EmbeddedPostgres
from hangar.settings import Settings
from hangar.store.db import open_store


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    """A real store and envelope; the PostgreSQL and the backend are never started."""
    settings = Settings(home=tmp_path / "home")
    settings.ensure_dirs()
    return Context(
        settings=settings,
        store=open_store(settings.state_dir / "hangar.db"),
        envelope=Envelope(AESGCM.generate_key(bit_length=256)),
        postgres=EmbeddedPostgres(settings.pgdata_dir),
        backend=LocalBackend(interval=1.0, on_health=lambda *_: None),
        logs=LogStore.from_settings(settings),
        submit=lambda *_: None,
    )
