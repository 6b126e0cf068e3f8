"""change_status: the one function that moves an environment between statuses.

It checks TRANSITIONS, writes the new status and an event with the reason in the
caller's transaction, and keeps `last_update` (MWAA's LastUpdate) truthful.
Illegal moves raise IllegalTransition; nothing is asserted.

The invariant on operations: an environment has at most one open operation
(repository.open_operation), and DELETED closes it. resumable_operations is what a
restarted control plane resumes: never an operation of a deleted environment.
"""
from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from hangar.schemas.operations import OperationKind
from hangar.domain.status import Status, allowed
from hangar.errors import IllegalTransition
from hangar.logstore.handler import about
from hangar.store import repository
from hangar.store.models import EnvironmentRow, OperationRow, utcnow

log = logging.getLogger(__name__)

# last_update.status follows the status that ends (or starts) a create or update
_LAST_UPDATE = {
    Status.CREATING: "PENDING",
    Status.UPDATING: "PENDING",
    # a rollback means the update failed; the error is kept while the old revision returns
    Status.ROLLING_BACK: "FAILED",
    Status.CREATE_FAILED: "FAILED",
    Status.UPDATE_FAILED: "FAILED",
}


def change_status(
    session: Session,
    env: EnvironmentRow,
    target: Status,
    *,
    reason: str,
    error_code: str | None = None,
    error_message: str | None = None,
) -> None:
    current = Status(env.status)
    if current == target:
        env.status_reason = reason
        return
    if not allowed(current, target):
        raise IllegalTransition(env.name, current, target)
    env.status = target
    env.status_reason = reason
    log.info("status %s -> %s: %s", current.value, target.value, reason, **about(env.id))
    repository.add_event(session, env, previous=current, status=target, reason=reason)
    if target == Status.DELETED:
        repository.close_operations(session, env.id, step="environment deleted")

    outcome = _LAST_UPDATE.get(target)
    if target == Status.AVAILABLE and current in (Status.CREATING, Status.UPDATING, Status.ROLLING_BACK):
        outcome = "SUCCESS" if current != Status.ROLLING_BACK else None
        if current == Status.UPDATING and error_code is not None:
            outcome = "FAILED"  # the update failed before anything switched; the old revision serves on
    if target == Status.UPDATE_FAILED and current == Status.ROLLING_BACK:
        outcome = None  # the rollback already recorded why the update failed
    if outcome is not None:
        env.last_update_status = outcome
        if outcome == "PENDING":
            env.last_update_at = utcnow()
            env.last_update_revision = env.revision
            env.last_update_error_code = env.last_update_error_message = None
        if outcome == "FAILED":
            env.last_update_error_code = error_code
            env.last_update_error_message = error_message


def resumable_operations(session: Session) -> list[tuple[str, int]]:
    """(environment id, operation id) for each open operation a restarted control plane resumes.

    An operation of a DELETED environment is closed, not resumed; a DELETING environment
    resumes its delete (opened again if another operation was left open instead); of several
    open operations of one environment (left by versions before the invariant) the latest
    is resumed and the others are closed."""
    resume: dict[str, int] = {}
    for operation in repository.pending_operations(session):
        env = repository.get_by_id(session, operation.environment_id)
        if operation.done:  # closed by an earlier step of this loop
            continue
        if env.status == Status.DELETED:
            repository.close_operations(session, env.id, step="environment deleted")
        elif env.status == Status.DELETING and operation.kind != OperationKind.DELETE:
            resume[env.id] = repository.open_operation(session, env_id=env.id, kind=OperationKind.DELETE, revision=env.revision).id
        else:
            if env.id in resume:
                repository.close_operation(session.get_one(OperationRow, resume[env.id]),
                                           step=f"superseded by operation {operation.id}")
            resume[env.id] = operation.id
    return list(resume.items())
