"""Which operation runs for which kind: the one table of OperationKind -> Operation."""
from __future__ import annotations

from hangar.reconciler.operation import Operation
from hangar.reconciler.operations import clone, create, delete, maintenance, restore, rotate_fernet, snapshot, update
from hangar.schemas.operations import OperationKind

OPERATIONS: dict[OperationKind, Operation] = {
    module.OPERATION.kind: module.OPERATION
    for module in (create, update, delete, rotate_fernet, snapshot, restore, clone, maintenance)
}
assert set(OPERATIONS) == set(OperationKind), "every operation kind has an operation"


def operation_for(kind: str) -> Operation:
    return OPERATIONS[OperationKind(kind)]
