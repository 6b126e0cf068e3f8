"""The environment status machine (TRANSITIONS) and change_status on a real SQLite store."""
from __future__ import annotations

import itertools
from collections import deque
import pytest
from sqlalchemy import select

from hangar.domain.lifecycle import change_status
from hangar.schemas.spec import Spec
from hangar.domain.status import IN_PROGRESS, RUNNING, TRANSITIONS, UPDATABLE, Status, allowed
from hangar.errors import IllegalTransition
from hangar.store import repository
from hangar.store.db import Store, open_store
from hangar.store.models import EnvironmentRow, EventRow, utcnow

S = Status


# --- the table itself ---


def reachable(start: Status) -> set[Status]:
    seen, todo = {start}, deque([start])
    while todo:
        for nxt in TRANSITIONS[todo.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_every_status_has_a_row_and_targets_are_statuses():
    assert set(TRANSITIONS) == set(Status)
    for targets in TRANSITIONS.values():
        assert targets <= set(Status)


def test_no_self_transitions():
    for status, targets in TRANSITIONS.items():
        assert status not in targets


def test_deleted_is_terminal_and_reachable_from_everything():
    assert TRANSITIONS[S.DELETED] == frozenset()
    for status in Status:
        if status is not S.DELETED:
            assert S.DELETED in reachable(status), status


def test_deleted_only_through_deleting():
    sources = {status for status, targets in TRANSITIONS.items() if S.DELETED in targets}
    assert sources == {S.DELETING}


def test_lifecycle_from_creating_reaches_every_operational_status():
    assert reachable(S.CREATING) >= {
        S.AVAILABLE, S.CREATE_FAILED, S.UPDATING, S.UPDATE_FAILED, S.ROLLING_BACK, S.DELETING, S.DELETED,
        S.UNAVAILABLE, S.MAINTENANCE, S.CREATING_SNAPSHOT,
    }


def test_every_non_terminal_status_can_get_back_to_available():
    for status in Status:
        if status not in (S.DELETING, S.DELETED):
            assert S.AVAILABLE in reachable(status), status


def test_status_sets_are_consistent():
    # an update may start from every UPDATABLE status, and nothing in progress is updatable
    for status in UPDATABLE:
        assert allowed(status, S.UPDATING)
    assert not (UPDATABLE & {S.CREATING, S.UPDATING, S.DELETING, S.ROLLING_BACK})
    assert IN_PROGRESS <= set(Status)
    assert S.DELETED not in RUNNING and S.CREATING not in RUNNING


@pytest.mark.parametrize(
    ("current", "target"),
    [(S.DELETED, S.AVAILABLE), (S.CREATING, S.UPDATING), (S.DELETING, S.AVAILABLE), (S.CREATE_FAILED, S.AVAILABLE),
     (S.AVAILABLE, S.CREATING), (S.ROLLING_BACK, S.DELETING), (S.UPDATING, S.DELETING)],
)
def test_some_moves_are_not_allowed(current, target):
    assert not allowed(current, target)


# --- change_status against the store ---


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    # one migrated database for the module (migrating is the slow part); every test makes its own rows
    return open_store(tmp_path_factory.mktemp("store") / "s.db")


_ids = itertools.count(1)


def make_env(store: Store, status: Status, **fields) -> str:
    """Insert an environment as create_environment does, then force its status (test setup only)."""
    env_id = f"00000000-0000-0000-0000-{next(_ids):012d}"
    with store.session() as session:
        env = EnvironmentRow(
            id=env_id, name=f"env{env_id[-6:]}", status=Status.CREATING, status_reason="queued", revision=1, ports={},
            database_name=None, created_at=utcnow(), last_update_status="PENDING", last_update_at=utcnow(),
            last_update_revision=1,
        )
        session.add(env)
        session.flush()
        repository.add_event(session, env, previous=None, status=Status.CREATING, reason="create requested")
        repository.add_revision(session, env, Spec(dags="/tmp", airflow_version="3.0.0"), 1)
        env.status = status
        for key, value in fields.items():
            setattr(env, key, value)
    return env_id


def move(store: Store, env_id: str, target: Status, **kwargs) -> None:
    with store.session() as session:
        env = repository.get_by_id(session, env_id)
        change_status(session, env, target, **kwargs)


def load(store: Store, env_id: str) -> EnvironmentRow:
    with store.session() as session:
        return repository.get_by_id(session, env_id)


def events(store: Store, env_id: str) -> list[EventRow]:
    with store.session() as session:
        return repository.list_events(session, env_id)


ALLOWED = [(a, b) for a in Status for b in sorted(TRANSITIONS[a])]
FORBIDDEN = [(a, b) for a in Status for b in Status if a != b and b not in TRANSITIONS[a]]


@pytest.mark.parametrize(("current", "target"), ALLOWED)
def test_allowed_moves_change_status_and_record_an_event(store, current, target):
    env_id = make_env(store, current)
    before = len(events(store, env_id))
    move(store, env_id, target, reason=f"because {current}->{target}")
    env = load(store, env_id)
    assert env.status == target
    assert env.status_reason == f"because {current}->{target}"
    recorded = events(store, env_id)
    assert len(recorded) == before + 1
    assert (recorded[-1].previous, recorded[-1].status, recorded[-1].reason) == (
        current, target, f"because {current}->{target}"
    )


@pytest.mark.parametrize(("current", "target"), FORBIDDEN)
def test_forbidden_moves_raise_and_change_nothing(store, current, target):
    env_id = make_env(store, current, status_reason="as it was")
    before = len(events(store, env_id))
    with pytest.raises(IllegalTransition) as excinfo:
        move(store, env_id, target, reason="nope")
    assert str(current) in excinfo.value.message and str(target) in excinfo.value.message
    assert excinfo.value.code == "ILLEGAL_TRANSITION"
    env = load(store, env_id)
    assert env.status == current
    assert env.status_reason == "as it was"
    assert len(events(store, env_id)) == before


@pytest.mark.parametrize(("current", "target"), [(S.DELETED, S.AVAILABLE), (S.CREATING, S.UPDATING)])
def test_named_illegal_transitions(store, current, target):
    env_id = make_env(store, current)
    with pytest.raises(IllegalTransition):
        move(store, env_id, target, reason="x")


def test_same_status_only_updates_the_reason(store):
    env_id = make_env(store, S.UNAVAILABLE, status_reason="scheduler down")
    before = len(events(store, env_id))
    move(store, env_id, S.UNAVAILABLE, reason="web server down")
    env = load(store, env_id)
    assert env.status == S.UNAVAILABLE
    assert env.status_reason == "web server down"
    assert len(events(store, env_id)) == before


def test_event_is_rolled_back_with_the_callers_transaction(store):
    env_id = make_env(store, S.AVAILABLE)
    before = len(events(store, env_id))
    with pytest.raises(RuntimeError):
        with store.session() as session:
            env = repository.get_by_id(session, env_id)
            change_status(session, env, S.UPDATING, reason="update")
            raise RuntimeError("the caller failed after changing status")
    assert load(store, env_id).status == S.AVAILABLE
    assert len(events(store, env_id)) == before


# --- last_update ---


def test_create_failed_records_failure_with_error(store):
    env_id = make_env(store, S.CREATING)
    move(store, env_id, S.CREATE_FAILED, reason="boom", error_code="REQUIREMENTS_FAILED", error_message="uv said no")
    env = load(store, env_id)
    assert env.last_update_status == "FAILED"
    assert env.last_update_error_code == "REQUIREMENTS_FAILED"
    assert env.last_update_error_message == "uv said no"


def test_create_succeeds(store):
    env_id = make_env(store, S.CREATING)
    move(store, env_id, S.AVAILABLE, reason="healthy")
    env = load(store, env_id)
    assert env.last_update_status == "SUCCESS"
    assert env.last_update_error_code is None and env.last_update_error_message is None


def test_update_start_is_pending_and_clears_previous_error(store):
    env_id = make_env(
        store, S.UPDATE_FAILED, revision=3, last_update_status="FAILED", last_update_revision=2,
        last_update_error_code="X", last_update_error_message="old failure",
    )
    old_at = load(store, env_id).last_update_at
    move(store, env_id, S.UPDATING, reason="update to revision 3")
    env = load(store, env_id)
    assert env.last_update_status == "PENDING"
    assert env.last_update_revision == 3
    assert env.last_update_error_code is None and env.last_update_error_message is None
    assert env.last_update_at >= old_at


def test_update_then_success(store):
    env_id = make_env(store, S.AVAILABLE, revision=2)
    move(store, env_id, S.UPDATING, reason="update")
    move(store, env_id, S.AVAILABLE, reason="done")
    env = load(store, env_id)
    assert env.last_update_status == "SUCCESS"
    assert env.last_update_revision == 2


def test_update_failed_directly(store):
    env_id = make_env(store, S.AVAILABLE, revision=2)
    move(store, env_id, S.UPDATING, reason="update")
    move(store, env_id, S.UPDATE_FAILED, reason="x", error_code="COMPONENT_FAILED", error_message="scheduler died")
    env = load(store, env_id)
    assert (env.last_update_status, env.last_update_error_code, env.last_update_error_message) == (
        "FAILED", "COMPONENT_FAILED", "scheduler died"
    )


def test_rollback_to_available_keeps_the_update_failure(store):
    env_id = make_env(store, S.AVAILABLE, revision=2)
    move(store, env_id, S.UPDATING, reason="update")
    move(store, env_id, S.ROLLING_BACK, reason="rolling back", error_code="COMPONENT_FAILED",
         error_message="web server never came up")
    assert load(store, env_id).last_update_status == "FAILED"
    move(store, env_id, S.AVAILABLE, reason="rolled back to revision 1")
    env = load(store, env_id)
    assert env.status == S.AVAILABLE
    assert env.last_update_status == "FAILED"
    assert env.last_update_error_code == "COMPONENT_FAILED"
    assert env.last_update_error_message == "web server never came up"
    assert [(e.previous, e.status) for e in events(store, env_id)][-3:] == [
        (S.AVAILABLE, S.UPDATING), (S.UPDATING, S.ROLLING_BACK), (S.ROLLING_BACK, S.AVAILABLE)
    ]


def test_failed_rollback_keeps_the_original_error(store):
    env_id = make_env(store, S.AVAILABLE, revision=2)
    move(store, env_id, S.UPDATING, reason="update")
    move(store, env_id, S.ROLLING_BACK, reason="rb", error_code="REQUIREMENTS_FAILED", error_message="first")
    move(store, env_id, S.UPDATE_FAILED, reason="rb failed", error_code="COMPONENT_FAILED", error_message="second")
    env = load(store, env_id)
    assert (env.last_update_status, env.last_update_error_code, env.last_update_error_message) == (
        "FAILED", "REQUIREMENTS_FAILED", "first"
    )


def test_health_moves_do_not_touch_last_update(store):
    env_id = make_env(store, S.AVAILABLE, last_update_status="SUCCESS")
    move(store, env_id, S.UNAVAILABLE, reason="scheduler FATAL")
    move(store, env_id, S.AVAILABLE, reason="healthy again")
    assert load(store, env_id).last_update_status == "SUCCESS"


def test_retrying_a_failed_create_is_pending_again(store):
    env_id = make_env(store, S.CREATING)
    move(store, env_id, S.CREATE_FAILED, reason="x", error_code="E", error_message="m")
    move(store, env_id, S.CREATING, reason="retry")
    env = load(store, env_id)
    assert env.last_update_status == "PENDING"
    assert env.last_update_error_code is None


def test_events_are_ordered_per_environment(store):
    a = make_env(store, S.CREATING)
    b = make_env(store, S.CREATING)
    move(store, a, S.AVAILABLE, reason="a up")
    move(store, b, S.CREATE_FAILED, reason="b failed")
    move(store, a, S.DELETING, reason="a delete")
    move(store, a, S.DELETED, reason="a gone")
    assert [e.reason for e in events(store, a)] == ["create requested", "a up", "a delete", "a gone"]
    assert [e.reason for e in events(store, b)] == ["create requested", "b failed"]
    with store.session() as session:
        assert all(e.at is not None for e in session.scalars(select(EventRow)))
