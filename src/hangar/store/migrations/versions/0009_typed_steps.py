"""typed operation steps

Revision ID: 0009_typed_steps
Revises: 0008_worker_hosts
Create Date: 2026-12-07 15:30:00.000000

An operation's steps now say how it ended (`outcome`) and mark a step a resumed
operation must not repeat (`checkpoint`), where readers used to match the words of a
step. Steps recorded before this carry neither: they are given them from those words,
once, here. Nothing else in a step changes.
"""
import json

import sqlalchemy as sa
from alembic import op

revision = '0009_typed_steps'
down_revision = '0008_worker_hosts'
branch_labels = None
depends_on = None

_OUTCOMES = {"done": "done", "failed": "failed", "rolled back": "rolled back", "environment deleted": "superseded"}
_CHECKPOINTS = {"new fernet key stored": "fernet-stored"}


def typed(steps: list[dict], done: bool) -> list[dict]:
    steps = [dict(step) for step in steps]
    for step in steps:
        if step.get("step") in _CHECKPOINTS:
            step.setdefault("checkpoint", _CHECKPOINTS[step["step"]])
    if done and steps and "outcome" not in steps[-1]:
        text = steps[-1].get("step", "")
        outcome = _OUTCOMES.get(text) or ("superseded" if text.startswith("superseded by") else None)
        if outcome:
            steps[-1]["outcome"] = outcome
    return steps


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, steps, done FROM operations")).fetchall()
    for row_id, raw, done in rows:
        steps = json.loads(raw) if isinstance(raw, str) else (raw or [])
        new = typed(steps, bool(done))
        if new != steps:
            connection.execute(sa.text("UPDATE operations SET steps = :steps WHERE id = :id"),
                               {"steps": json.dumps(new), "id": row_id})


def downgrade() -> None:
    pass  # the added keys are ignored by older readers
