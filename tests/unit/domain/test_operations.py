"""At most one open operation per environment; a delete closes the others and a deleted
environment's operations are never resumed (a restart used to start a deleted one again)."""
from __future__ import annotations

import itertools

import pytest

from hangar.context import Context
from hangar.domain.environments import delete_environment
from hangar.domain.lifecycle import change_status, resumable_operations
from hangar.schemas.spec import Spec
from hangar.domain.status import Status
from hangar.errors import EnvironmentBusy, OperationInProgress, OperationSuperseded
from hangar.reconciler.reconciler import Reconciler
from hangar.reconciler.steps import Steps
from hangar.reconciler.queue import Work
from hangar.store import repository
from hangar.store.models import EnvironmentRow, OperationRow, utcnow

_ids = itertools.count(1)


def make_env(ctx: Context, status: Status, *, kind: str | None = "create") -> tuple[str, int | None]:
    """An environment row in `status`, with an open operation of `kind` (test setup only)."""
    env_id = f"00000000-0000-0000-0000-{next(_ids):012d}"
    with ctx.store.session() as session:
        env = EnvironmentRow(
            id=env_id, name=f"env{env_id[-6:]}", status=status, status_reason="set up", revision=1, ports={},
            database_name=None, created_at=utcnow(), last_update_status="PENDING", last_update_at=utcnow(),
            last_update_revision=1,
        )
        session.add(env)
        session.flush()
        repository.add_revision(session, env, Spec(dags="/srv/dags", airflow_version="3.3.2"), 1)
        operation = repository.open_operation(session, env_id=env_id, kind=kind, revision=1) if kind else None
        return env_id, operation and operation.id


def open_ones(ctx: Context, env_id: str) -> list[tuple[str, int]]:
    with ctx.store.session() as session:
        return [(op.kind, op.id) for op in repository.open_operations(session, env_id)]


def operation(ctx: Context, operation_id: int) -> OperationRow:
    with ctx.store.session() as session:
        row = session.get_one(OperationRow, operation_id)
        session.expunge(row)
        return row


def test_a_second_operation_is_refused_while_one_is_open(ctx):
    env_id, create = make_env(ctx, Status.CREATING)
    with pytest.raises(OperationInProgress) as caught, ctx.store.session() as session:
        repository.open_operation(session, env_id=env_id, kind="update", revision=2)
    assert isinstance(caught.value, EnvironmentBusy)  # a 409, and MWAA's ValidationException
    assert "create operation is still in progress" in caught.value.message
    assert open_ones(ctx, env_id) == [("create", create)]


def test_a_delete_during_a_create_closes_the_create_in_the_same_transaction(ctx):
    env_id, create = make_env(ctx, Status.CREATING)
    with ctx.store.session() as session:
        name = repository.get_by_id(session, env_id).name
    delete_environment(ctx, name=name)
    (only,) = open_ones(ctx, env_id)
    assert only[0] == "delete"
    closed = operation(ctx, create)
    assert closed.done and closed.steps[-1]["step"] == "superseded by delete"


def test_deleted_closes_every_open_operation(ctx):
    env_id, _ = make_env(ctx, Status.DELETING, kind="delete")
    with ctx.store.session() as session:
        session.add(OperationRow(environment_id=env_id, kind="create", revision=1, steps=[], started_at=utcnow(),
                                 updated_at=utcnow()))  # left open by a version before the invariant
    with ctx.store.session() as session:
        change_status(session, repository.get_by_id(session, env_id), Status.DELETED, reason="deleted")
    assert open_ones(ctx, env_id) == []


def test_a_deleted_environment_is_never_resumed(ctx):
    # what versions before the invariant left: a create never closed, the environment DELETED
    env_id, create = make_env(ctx, Status.DELETED)
    with ctx.store.session() as session:
        assert resumable_operations(session) == []
    assert open_ones(ctx, env_id) == []
    assert operation(ctx, create).steps[-1]["step"] == "environment deleted"


def test_a_deleting_environment_resumes_its_delete_not_its_create(ctx):
    env_id, create = make_env(ctx, Status.DELETING)
    with ctx.store.session() as session:
        resumed = resumable_operations(session)
    (only,) = open_ones(ctx, env_id)
    assert only[0] == "delete" and resumed == [(env_id, only[1])]
    assert operation(ctx, create).done


def test_of_several_open_operations_the_latest_is_resumed(ctx):
    env_id, first = make_env(ctx, Status.UPDATING, kind="update")
    with ctx.store.session() as session:
        later = OperationRow(environment_id=env_id, kind="update", revision=2, steps=[], started_at=utcnow(),
                             updated_at=utcnow())
        session.add(later)
        session.flush()
        later_id = later.id
    other_id, other_op = make_env(ctx, Status.CREATING)
    with ctx.store.session() as session:
        resumed = resumable_operations(session)
    assert sorted(resumed) == sorted([(env_id, later_id), (other_id, other_op)])
    assert operation(ctx, first).done and operation(ctx, first).steps[-1]["step"] == f"superseded by operation {later_id}"


def test_a_superseded_create_stops_at_its_next_step_and_records_nothing(ctx):
    env_id, create = make_env(ctx, Status.CREATING)
    with ctx.store.session() as session:
        name = repository.get_by_id(session, env_id).name
    delete_environment(ctx, name=name)
    reconciler, work = Reconciler(ctx), Work(env_id=env_id, operation_id=create)
    steps = Steps(ctx, work)
    with pytest.raises(OperationSuperseded, match="superseded by delete"):
        steps.record("starting components")
    steps.finish(1, Status.AVAILABLE, "revision 1 is running")  # the create's end: no effect
    reconciler.fail(work, OperationSuperseded("closed"))
    with ctx.store.session() as session:
        env = repository.get_by_id(session, env_id)
        assert env.status == Status.DELETING and env.running_revision is None
        assert [e.status for e in repository.list_events(session, env_id)][-1] == Status.DELETING
    assert operation(ctx, create).steps[-1]["step"] == "superseded by delete"
