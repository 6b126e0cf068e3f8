"""Worker tokens and joined hosts with a real store and a clock moved by hand."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from hangar.context import Context
from hangar.domain import environments, workers
from hangar.schemas.spec import EnvironmentCreate
from hangar.domain.workers import ExecutorNotCelery, WorkerTokenInvalid, WorkerTokenNotFound, WorkerTokenRevoked
from hangar.schemas.workers import Heartbeat, HostState, HostStatus
from hangar.settings import Settings
from hangar.store import repository
from hangar.store.models import RevisionRow, WorkerHostRow, WorkerTokenRow

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)


def make_env(ctx: Context, tmp_path: Path, name: str, *, executor: str = "celery") -> None:
    dags = tmp_path / "dags"
    dags.mkdir(exist_ok=True)
    environments.create_environment(ctx, request=EnvironmentCreate(name=name, dags=str(dags)))
    if executor != "local":
        # test set-up only: the stored spec says celery, as a revision made with executor=celery does
        with ctx.store.session() as session:
            env = repository.get_live(session, name)
            revision = session.get_one(RevisionRow, (env.id, env.revision))
            revision.spec = {**revision.spec, "executor": executor}


def beat(ctx: Context, caller, *, hostname: str = "host-a", now: datetime = T0, **fields) -> None:
    report = Heartbeat(hostname=hostname, concurrency=fields.pop("concurrency", 8), **fields)
    workers.record_heartbeat(ctx, caller=caller, report=report, address="127.77.1.2", now=now)


def statuses(ctx: Context, name: str, now: datetime) -> dict[str, HostStatus]:
    return {h.hostname: h.status for h in workers.list_hosts(ctx, name=name, now=now)}


def test_a_token_is_shown_once_and_only_its_hash_is_stored(ctx, tmp_path):
    make_env(ctx, tmp_path, "sales")
    created = workers.issue_token(ctx, name="sales", label="rack 4", now=T0)
    assert created.token.startswith("hwt_") and len(created.token) > 40
    assert created.created_at == T0 and created.label == "rack 4"
    with ctx.store.session() as session:
        row = session.get_one(WorkerTokenRow, created.id)
        assert row.token_sha256 == workers._digest(created.token) and len(row.token_sha256) == 64
        assert created.token not in repr(vars(row))
    # nowhere in the database's files either
    ctx.store.engine.dispose()
    for path in ctx.settings.state_dir.glob("hangar.db*"):
        assert created.token.encode() not in path.read_bytes(), path
    listed = workers.list_tokens(ctx, name="sales")
    assert [t.id for t in listed] == [created.id]
    assert "token" not in type(listed[0]).model_fields and created.token not in listed[0].model_dump_json()
    assert listed[0].revoked is False and listed[0].hosts == 0


def test_two_tokens_differ(ctx, tmp_path):
    make_env(ctx, tmp_path, "sales")
    first, second = (workers.issue_token(ctx, name="sales") for _ in range(2))
    assert first.id != second.id and first.token != second.token


def test_a_local_environment_gets_no_token(ctx, tmp_path):
    make_env(ctx, tmp_path, "solo", executor="local")
    with pytest.raises(ExecutorNotCelery) as raised:
        workers.issue_token(ctx, name="solo")
    assert raised.value.code == "EXECUTOR_NOT_CELERY"
    assert "'solo' uses the local executor" in raised.value.message and "celery" in raised.value.message
    with ctx.store.session() as session:
        assert session.scalars(select(WorkerTokenRow)).all() == []


def test_verify_accepts_the_token_and_records_its_use(ctx, tmp_path):
    make_env(ctx, tmp_path, "sales")
    created = workers.issue_token(ctx, name="sales", now=T0)
    caller = workers.verify_token(ctx, name="sales", token=created.token, now=T0 + timedelta(minutes=1))
    assert caller.token_id == created.id and caller.environment == "sales"
    assert workers.list_tokens(ctx, name="sales")[0].last_used_at == T0 + timedelta(minutes=1)


@pytest.mark.parametrize("wrong", ["", "hwt_", "hwt_not-a-token", "hgr_admin-key", "WT:secret"])
def test_a_wrong_token_is_invalid(ctx, tmp_path, wrong):
    make_env(ctx, tmp_path, "sales")
    created = workers.issue_token(ctx, name="sales")
    with pytest.raises(WorkerTokenInvalid) as raised:
        workers.verify_token(ctx, name="sales", token=wrong)
    assert raised.value.code == "WORKER_TOKEN_INVALID"
    with pytest.raises(WorkerTokenInvalid):  # one character off
        workers.verify_token(ctx, name="sales", token=created.token[:-1] + ("A" if created.token[-1] != "A" else "B"))


def test_a_token_is_valid_only_for_its_environment(ctx, tmp_path):
    make_env(ctx, tmp_path, "alpha")
    make_env(ctx, tmp_path, "beta")
    alpha = workers.issue_token(ctx, name="alpha")
    with pytest.raises(WorkerTokenInvalid) as raised:
        workers.verify_token(ctx, name="beta", token=alpha.token)
    assert "'beta'" in raised.value.message
    with pytest.raises(WorkerTokenInvalid):
        workers.verify_token(ctx, name="nowhere", token=alpha.token)
    with pytest.raises(WorkerTokenNotFound):  # nor can beta revoke it
        workers.revoke_token(ctx, name="beta", token_id=alpha.id)
    assert workers.verify_token(ctx, name="alpha", token=alpha.token).environment == "alpha"


def test_a_revoked_token_is_refused_as_revoked(ctx, tmp_path):
    make_env(ctx, tmp_path, "sales")
    created = workers.issue_token(ctx, name="sales")
    kept = workers.issue_token(ctx, name="sales")
    revoked = workers.revoke_token(ctx, name="sales", token_id=created.id, now=T0)
    assert revoked.revoked and revoked.revoked_at == T0
    again = workers.revoke_token(ctx, name="sales", token_id=created.id, now=T0 + timedelta(hours=1))
    assert again.revoked_at == T0  # the first revocation stands
    with pytest.raises(WorkerTokenRevoked) as raised:
        workers.verify_token(ctx, name="sales", token=created.token)
    assert raised.value.code == "WORKER_TOKEN_REVOKED" and created.id in raised.value.message
    assert created.token not in raised.value.message
    workers.verify_token(ctx, name="sales", token=kept.token)  # the other token still works
    with pytest.raises(WorkerTokenNotFound):
        workers.revoke_token(ctx, name="sales", token_id="wt_000000000000")


def test_a_token_of_a_deleted_environment_is_revoked(ctx, tmp_path):
    make_env(ctx, tmp_path, "sales")
    created = workers.issue_token(ctx, name="sales")
    with ctx.store.session() as session:
        repository.get_live(session, "sales").status = "DELETED"
    make_env(ctx, tmp_path, "sales")  # a new environment of the same name
    with pytest.raises(WorkerTokenRevoked) as raised:
        workers.verify_token(ctx, name="sales", token=created.token)
    assert "deleted" in raised.value.message


def test_a_heartbeat_registers_the_host_and_the_next_updates_it(ctx, tmp_path):
    make_env(ctx, tmp_path, "sales")
    caller = workers.verify_token(ctx, name="sales", token=workers.issue_token(ctx, name="sales").token)
    beat(ctx, caller, workers=["celery@host-a"], airflow_version="3.3.2", runtime_key="abc", running_tasks=1)
    beat(ctx, caller, now=T0 + timedelta(seconds=10), concurrency=16, running_tasks=5, state=HostState.DRAINING,
         workers=["celery@host-a", "celery2@host-a"])
    hosts = workers.list_hosts(ctx, name="sales", now=T0 + timedelta(seconds=12))
    assert len(hosts) == 1
    host = hosts[0]
    assert (host.hostname, host.address, host.status, host.state) == ("host-a", "127.77.1.2", HostStatus.ACTIVE,
                                                                      HostState.DRAINING)
    assert (host.concurrency, host.running_tasks, host.workers) == (16, 5, ["celery@host-a", "celery2@host-a"])
    assert (host.joined_at, host.last_heartbeat_at, host.heartbeat_age_seconds) == (T0, T0 + timedelta(seconds=10), 2.0)
    assert (host.airflow_version, host.runtime_key, host.token_id) == (None, None, caller.token_id)
    assert workers.list_tokens(ctx, name="sales")[0].hosts == 1


def test_a_host_is_lost_after_the_threshold_without_sleeping(ctx, tmp_path):
    assert ctx.settings.worker_lost_seconds == 30
    make_env(ctx, tmp_path, "sales")
    caller = workers.verify_token(ctx, name="sales", token=workers.issue_token(ctx, name="sales").token)
    beat(ctx, caller, hostname="quiet")
    beat(ctx, caller, hostname="chatty")
    assert statuses(ctx, "sales", T0 + timedelta(seconds=29.9)) == {"chatty": "ACTIVE", "quiet": "ACTIVE"}
    beat(ctx, caller, hostname="chatty", now=T0 + timedelta(seconds=25))
    assert statuses(ctx, "sales", T0 + timedelta(seconds=30)) == {"chatty": "ACTIVE", "quiet": "LOST"}
    assert statuses(ctx, "sales", T0 + timedelta(seconds=55)) == {"chatty": "LOST", "quiet": "LOST"}
    # back after being lost: a new join
    beat(ctx, caller, hostname="quiet", now=T0 + timedelta(minutes=5))
    quiet = next(h for h in workers.list_hosts(ctx, name="sales", now=T0 + timedelta(minutes=5)) if h.hostname == "quiet")
    assert quiet.status == HostStatus.ACTIVE and quiet.joined_at == T0 + timedelta(minutes=5)


def test_the_threshold_comes_from_settings(ctx, tmp_path, monkeypatch):
    monkeypatch.setenv("HANGAR_WORKER_LOST_SECONDS", "5")
    assert Settings().worker_lost_seconds == 5
    ctx.settings = Settings(home=ctx.settings.home, worker_lost_seconds=5)
    make_env(ctx, tmp_path, "sales")
    caller = workers.verify_token(ctx, name="sales", token=workers.issue_token(ctx, name="sales").token)
    beat(ctx, caller)
    assert statuses(ctx, "sales", T0 + timedelta(seconds=6)) == {"host-a": "LOST"}


def test_a_host_whose_token_is_revoked_shows_revoked(ctx, tmp_path):
    make_env(ctx, tmp_path, "sales")
    created = workers.issue_token(ctx, name="sales")
    caller = workers.verify_token(ctx, name="sales", token=created.token)
    beat(ctx, caller, hostname="a")
    beat(ctx, caller, hostname="b", state=HostState.STOPPED)
    workers.revoke_token(ctx, name="sales", token_id=created.id)
    assert statuses(ctx, "sales", T0 + timedelta(seconds=1)) == {"a": "REVOKED", "b": "REVOKED"}
    with pytest.raises(WorkerTokenRevoked):  # verified before the revocation, refused after it
        beat(ctx, caller, hostname="a", now=T0 + timedelta(seconds=2))
    # the host joins again with a new token
    fresh = workers.verify_token(ctx, name="sales", token=workers.issue_token(ctx, name="sales").token)
    beat(ctx, fresh, hostname="a", now=T0 + timedelta(seconds=3))
    assert statuses(ctx, "sales", T0 + timedelta(seconds=4)) == {"a": "ACTIVE", "b": "REVOKED"}


def test_a_stopped_host_shows_stopped_and_rejoins(ctx, tmp_path):
    make_env(ctx, tmp_path, "sales")
    caller = workers.verify_token(ctx, name="sales", token=workers.issue_token(ctx, name="sales").token)
    beat(ctx, caller)
    beat(ctx, caller, now=T0 + timedelta(seconds=5), state=HostState.STOPPED)
    assert statuses(ctx, "sales", T0 + timedelta(hours=1)) == {"host-a": "STOPPED"}  # stopped, not lost
    beat(ctx, caller, now=T0 + timedelta(seconds=10))
    (host,) = workers.list_hosts(ctx, name="sales", now=T0 + timedelta(seconds=10))
    assert host.status == HostStatus.ACTIVE and host.joined_at == T0 + timedelta(seconds=10)


def test_hosts_of_different_environments_stay_apart(ctx, tmp_path):
    make_env(ctx, tmp_path, "alpha")
    make_env(ctx, tmp_path, "beta")
    for name in ("alpha", "beta"):
        caller = workers.verify_token(ctx, name=name, token=workers.issue_token(ctx, name=name).token)
        beat(ctx, caller, hostname="shared-host")
    with ctx.store.session() as session:
        assert len(session.scalars(select(WorkerHostRow)).all()) == 2
    assert statuses(ctx, "alpha", T0) == statuses(ctx, "beta", T0) == {"shared-host": "ACTIVE"}


@pytest.mark.parametrize(("revoked", "state", "age", "expected"), [
    (False, "RUNNING", 0, "ACTIVE"),
    (False, "DRAINING", 29, "ACTIVE"),
    (False, "RUNNING", 30, "LOST"),
    (False, "STOPPED", 3600, "STOPPED"),
    (True, "RUNNING", 0, "REVOKED"),
    (True, "STOPPED", 3600, "REVOKED"),
])
def test_host_status(revoked, state, age, expected):
    assert workers.host_status(state=state, last_heartbeat_at=T0, token_revoked=revoked,
                               now=T0 + timedelta(seconds=age), lost_after=30) == expected


def test_unknown_environment(ctx):
    from hangar.errors import EnvironmentNotFound

    for call in (lambda: workers.issue_token(ctx, name="ghost"), lambda: workers.list_tokens(ctx, name="ghost"),
                 lambda: workers.list_hosts(ctx, name="ghost")):
        with pytest.raises(EnvironmentNotFound):
            call()


@pytest.mark.parametrize("bad", [
    {"hostname": "", "concurrency": 1},
    {"hostname": "bad host", "concurrency": 1},
    {"hostname": "-leading", "concurrency": 1},
    {"hostname": "h", "concurrency": -1},
    {"hostname": "h", "concurrency": 1, "state": "SLEEPING"},
    {"hostname": "h", "concurrency": 1, "running_tasks": -2},
    {"hostname": "h"},
])
def test_bad_heartbeats_are_refused(bad):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Heartbeat.model_validate(bad)


def test_unknown_heartbeat_fields_are_ignored():
    assert Heartbeat.model_validate({"hostname": "h", "concurrency": 2, "queues": ["default"]}).hostname == "h"
