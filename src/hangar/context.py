"""What the domain and the reconciler share at run time, built once by the server."""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from hangar.backend.local import LocalBackend
from hangar.crypto import Envelope
from hangar.logstore.store import LogStore
from hangar.runtime.embedded_postgres import EmbeddedPostgres
from hangar.settings import Settings
from hangar.store.db import Store
from hangar.telemetry.registry import Telemetry


@dataclass(kw_only=True)
class Context:
    settings: Settings
    store: Store
    envelope: Envelope
    postgres: EmbeddedPostgres
    backend: LocalBackend
    logs: LogStore
    # hands an operation to the reconciler: (env_id, operation_id)
    submit: Callable[[str, int], None]
    # what /metrics shows, and the histograms the control plane observes as it works
    telemetry: Telemetry = field(default_factory=lambda: Telemetry(names=lambda env_id: None))
    # env_id -> when the maintenance loop last checked its pending maintenance against its window
    maintenance_checked: dict[str, datetime] = field(default_factory=dict)
    # environments whose git DAGs are to be synced now (hangar env sync, a push webhook), and
    # the event that wakes the git sync loop for them
    git_wanted: set[str] = field(default_factory=set)
    git_accept_rewritten: set[str] = field(default_factory=set)  # ... taking a force-pushed ref's new commit
    git_wake: threading.Event = field(default_factory=threading.Event)
