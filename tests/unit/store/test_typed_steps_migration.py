"""Steps recorded before steps were typed get their outcome and checkpoint from their words, once."""
from __future__ import annotations

import json

from alembic import command
from sqlalchemy import text

from hangar.context import Context
from hangar.domain.status import Status
from hangar.store import repository
from hangar.store.models import OperationRow
from hangar.store.db import alembic_config
from tests.unit.domain.test_operations import make_env

LEGACY = {
    "failed": [{"step": "runtime k ready", "at": "2026-01-01T00:00:00+00:00"},
               {"step": "failed", "at": "2026-01-01T00:00:01+00:00", "error": "boom"}],
    "rolled back": [{"step": "rolled back", "at": "2026-01-01T00:00:01+00:00"}],
    "rotation": [{"step": "new fernet key stored", "at": "2026-01-01T00:00:01+00:00"}],
    "superseded": [{"step": "superseded by delete", "at": "2026-01-01T00:00:01+00:00"}],
}


def test_legacy_steps_are_typed_by_the_migration(ctx: Context) -> None:
    ids = {}
    for label, steps in LEGACY.items():
        env_id, operation_id = make_env(ctx, Status.AVAILABLE, kind="update")
        with ctx.store.engine.begin() as connection:
            connection.execute(text("UPDATE operations SET steps = :s, done = :d WHERE id = :id"),
                               {"s": json.dumps(steps), "d": label != "rotation", "id": operation_id})
        ids[label] = operation_id
    config = alembic_config(str(ctx.store.engine.url))
    with ctx.store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0008_worker_hosts")
        command.upgrade(config, "head")
    with ctx.store.session() as session:
        read = {label: repository.steps_of(session.get(OperationRow, i)) for label, i in ids.items()}
    assert [s.outcome for s in read["failed"]] == [None, "failed"] and read["failed"][-1].error == "boom"
    assert read["rolled back"][-1].outcome == "rolled back"
    assert read["rotation"][-1].checkpoint == "fernet-stored" and read["rotation"][-1].outcome is None
    assert read["superseded"][-1].outcome == "superseded"
