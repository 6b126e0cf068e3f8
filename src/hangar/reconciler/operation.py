"""What an operation is to the reconciler: how it runs, and what its failure means.

Each operation kind (hangar.schemas.operations.OperationKind) has one module in
hangar.reconciler.operations that builds an `Operation`. Its failure rule maps an error
to the environment's status, in the transaction that records the failure; `after`
says what happens to the processes once it is recorded.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.orm import Session

from hangar.domain.lifecycle import change_status
from hangar.domain.status import Status
from hangar.reconciler.steps import Steps
from hangar.schemas.operations import OperationKind
from hangar.store.models import EnvironmentRow, OperationRow


class AfterFailure(StrEnum):
    STOP = "stop"  # nothing ran before: stop what started
    WATCH = "watch"  # something runs: the health watch takes it again
    NOTHING = "nothing"


@dataclass(frozen=True, kw_only=True)
class Failure:
    """A failed operation, as its failure rule sees it (inside the recording transaction)."""

    session: Session
    env: EnvironmentRow
    operation: OperationRow
    code: str
    message: str  # redacted


@dataclass(frozen=True, kw_only=True)
class Operation:
    kind: OperationKind
    run: Callable[[Steps, int], None]  # (steps, revision)
    on_failure: Callable[[Failure], None]
    after: AfterFailure


def fail_with(failure: Failure, status: Status) -> None:
    """The common rule's action: `status`, with the error as its reason and as the last update's error."""
    change_status(failure.session, failure.env, status, reason=failure.message, error_code=failure.code,
                  error_message=failure.message)
