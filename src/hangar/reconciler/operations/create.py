"""create: CREATING -> AVAILABLE, or CREATE_FAILED with whatever started stopped."""
from __future__ import annotations

from hangar.domain.status import Status
from hangar.reconciler.operation import AfterFailure, Failure, Operation, fail_with
from hangar.reconciler.steps import Steps
from hangar.schemas.operations import OperationKind


def run(steps: Steps, revision: int) -> None:
    steps.unwatch()
    target = steps.prepare(revision)
    steps.check_broker(target)
    steps.wait_ready(steps.launch(target))
    steps.finish(revision, Status.AVAILABLE, f"revision {revision} is running")


def failed(failure: Failure) -> None:
    fail_with(failure, Status.CREATE_FAILED)


OPERATION = Operation(kind=OperationKind.CREATE, run=run, on_failure=failed, after=AfterFailure.STOP)
