"""Operations and their steps, as the store keeps them and the API shows them.

An operation is one piece of reconcile work on one environment (OperationKind). Its
progress is a list of StepRecords, appended as the steps finish. The last record of a
finished operation carries its Outcome, and a step that later runs must find again
carries a Checkpoint, so nothing is read back by matching the words of a step.
"""
from __future__ import annotations

from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class OperationKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"  # with an Airflow upgrade or downgrade when the version changes
    DELETE = "delete"
    ROTATE_FERNET = "rotate-fernet"
    SNAPSHOT = "snapshot"
    RESTORE = "restore"
    CLONE = "clone"
    MAINTENANCE = "maintenance"


class Outcome(StrEnum):
    """How a finished operation ended; on its last step."""

    DONE = "done"
    FAILED = "failed"
    ROLLED_BACK = "rolled back"
    SUPERSEDED = "superseded"  # closed by a delete, or by the environment's deletion


class Checkpoint(StrEnum):
    """A step an operation run again after a crash must not repeat."""

    FERNET_STORED = "fernet-stored"  # the new fernet key replaced the old: only the last restart is left


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class StepRecord(BaseModel):
    """One finished step of an operation."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    step: str  # what was done, for people
    at: str = Field(default_factory=_now)  # ISO 8601, UTC
    error: str | None = None
    outcome: Outcome | None = None
    checkpoint: Checkpoint | None = None
    # the first step of a snapshot, restore or clone names its snapshot (and a snapshot's kind)
    snapshot_id: str | None = None
    kind: str | None = None
    # the first step of a maintenance: the runtime epoch in use, and why the maintenance runs
    epoch: int | None = None
    reason: str | None = None

    @classmethod
    def read(cls, raw: dict[str, Any]) -> StepRecord:
        return cls.model_validate(raw)

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    @property
    def started(self) -> datetime:
        return datetime.fromisoformat(self.at)
