"""The one status machine for environments (MWAA's status names).

Invariant: a status only changes through `change_status`, which checks TRANSITIONS
and records an event with the reason in the same transaction.
"""
from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    CREATING = "CREATING"
    CREATE_FAILED = "CREATE_FAILED"
    AVAILABLE = "AVAILABLE"
    UPDATING = "UPDATING"
    UPDATE_FAILED = "UPDATE_FAILED"
    ROLLING_BACK = "ROLLING_BACK"
    DELETING = "DELETING"
    DELETED = "DELETED"
    UNAVAILABLE = "UNAVAILABLE"
    MAINTENANCE = "MAINTENANCE"
    CREATING_SNAPSHOT = "CREATING_SNAPSHOT"
    PENDING = "PENDING"


S = Status

TRANSITIONS: dict[Status, frozenset[Status]] = {
    # a new environment is being built
    S.CREATING: frozenset({S.AVAILABLE, S.CREATE_FAILED, S.DELETING}),
    # a failed create can only be deleted or retried by the user
    S.CREATE_FAILED: frozenset({S.DELETING, S.CREATING}),
    S.AVAILABLE: frozenset({S.UPDATING, S.DELETING, S.UNAVAILABLE, S.MAINTENANCE, S.CREATING_SNAPSHOT}),
    # an in-place Airflow upgrade snapshots the metadata database on its way
    S.UPDATING: frozenset({S.AVAILABLE, S.UPDATE_FAILED, S.ROLLING_BACK, S.UNAVAILABLE, S.CREATING_SNAPSHOT}),
    # the previous revision keeps running after a failed update
    S.UPDATE_FAILED: frozenset({S.UPDATING, S.DELETING, S.UNAVAILABLE, S.AVAILABLE}),
    S.ROLLING_BACK: frozenset({S.AVAILABLE, S.UPDATE_FAILED, S.UNAVAILABLE}),
    S.DELETING: frozenset({S.DELETED}),
    S.DELETED: frozenset(),
    # health came back, or the user acts on the broken environment
    S.UNAVAILABLE: frozenset({S.AVAILABLE, S.UPDATING, S.DELETING}),
    # Hangar's own restarts (a runtime rebuilt for a patched dependency), inside the maintenance window
    S.MAINTENANCE: frozenset({S.AVAILABLE, S.UNAVAILABLE, S.ROLLING_BACK, S.UPDATE_FAILED}),
    S.CREATING_SNAPSHOT: frozenset({S.AVAILABLE, S.UNAVAILABLE, S.UPDATING, S.ROLLING_BACK}),
    S.PENDING: frozenset({S.CREATING, S.DELETING}),
}

# Statuses in which the reconciler still has work to do for the environment.
IN_PROGRESS = frozenset({S.CREATING, S.UPDATING, S.DELETING, S.ROLLING_BACK, S.CREATING_SNAPSHOT, S.MAINTENANCE})
# Statuses in which the user may start an update.
UPDATABLE = frozenset({S.AVAILABLE, S.UPDATE_FAILED, S.UNAVAILABLE})
# Statuses in which processes are expected to run.
RUNNING = frozenset({S.AVAILABLE, S.UNAVAILABLE, S.UPDATING, S.UPDATE_FAILED, S.ROLLING_BACK, S.CREATING_SNAPSHOT,
                     S.MAINTENANCE})


def allowed(current: Status, target: Status) -> bool:
    return target in TRANSITIONS[current]
