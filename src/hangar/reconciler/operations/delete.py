"""delete: DELETING -> DELETED. Processes, database, role, files, cgroup and system user go.

A failure leaves DELETING with the error as the reason; deleting again resumes (every
step here is idempotent)."""
from __future__ import annotations

import shutil

from hangar.backend import confinement, identity
from hangar.domain import git_dags
from hangar.domain.status import Status
from hangar.reconciler.operation import AfterFailure, Failure, Operation
from hangar.reconciler.steps import Steps
from hangar.schemas.operations import OperationKind
from hangar.store import repository


def run(steps: Steps, revision: int) -> None:
    ctx = steps.ctx
    steps.unwatch()
    with ctx.store.session() as session:
        database = repository.get_by_id(session, steps.env_id).database_name
    steps.record("stopping components")
    steps.stop()
    if database:
        steps.record(f"dropping database {database}")
        ctx.postgres.drop(database)
        ctx.postgres.drop_role(database)
    steps.record("removing files")
    shutil.rmtree(steps.layout.root, ignore_errors=True)
    shutil.rmtree(git_dags.git_root(ctx, steps.env_id), ignore_errors=True)  # DAGs from git, if any
    confinement.remove(steps.env_id)
    identity.remove_user(steps.env_id)
    steps.finish(revision, Status.DELETED, "deleted")


def failed(failure: Failure) -> None:
    failure.env.status_reason = f"delete failed, will retry on the next delete: {failure.message}"


OPERATION = Operation(kind=OperationKind.DELETE, run=run, on_failure=failed, after=AfterFailure.NOTHING)
