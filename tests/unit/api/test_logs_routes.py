"""GET /api/v1/environments/{name}/logs over HTTP with a real store: a token first, each bad
filter answered 400 with what was wrong, the filters applied, and --follow's stream."""
from __future__ import annotations

import json
import shutil

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hangar.api import errors as api_errors
from hangar.api.routes import logs as log_routes
from hangar.store import repository
from tests.unit.domain.test_workers import make_env

ADMIN_KEY = "hgr_test-admin-key"
T = "2026-12-07T10:00:0{}.000000Z"


@pytest.fixture
def env_id(ctx, tmp_path):
    make_env(ctx, tmp_path, "sales", executor="local")
    with ctx.store.session() as session:
        env_id = repository.get_live(session, "sales").id
    (ctx.settings.environments_dir / env_id).mkdir(parents=True, exist_ok=True)
    ctx.logs.append(env_id, "scheduler", [(T.format(1), "INFO", "scheduler started"), (T.format(3), "ERROR", "boom")])
    ctx.logs.append(env_id, "worker-1", [(T.format(2), "WARNING", "slow")])
    return env_id


@pytest.fixture
def client(ctx, env_id):
    app = FastAPI()
    api_errors.install(app)
    app.include_router(log_routes.router)
    app.state.ctx = ctx
    app.state.admin_key = ADMIN_KEY
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as test_client:
        yield test_client


URL = "/api/v1/environments/sales/logs"


def test_without_a_token_nothing_is_read(client):
    answer = client.get(URL, headers={"Authorization": ""})
    assert answer.status_code == 401


def test_filters(client):
    assert [e["message"] for e in client.get(URL).json()] == ["scheduler started", "slow", "boom"]
    assert client.get(URL, params={"component": "worker"}).json() == [
        {"time": T.format(2), "component": "worker-1", "level": "WARNING", "message": "slow"}]
    assert [e["message"] for e in client.get(URL, params={"level": "warning"}).json()] == ["slow", "boom"]
    assert [e["message"] for e in client.get(URL, params={"grep": "boo", "since": "2026-12-07T10:00:02Z"}).json()] == ["boom"]
    assert client.get(URL, params={"since": "10m"}).json() == []  # the lines are a while ago


@pytest.mark.parametrize("params, says", [
    ({"level": "LOUD"}, "unknown level 'LOUD': levels are DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ({"component": "sheduler"}, "unknown component 'sheduler'"),
    ({"since": "yesterday"}, "since 'yesterday' is neither a duration back from now"),
    ({"until": "10 minutes"}, "until '10 minutes' is neither a duration back from now"),
])
def test_a_bad_filter_is_named(client, params, says):
    answer = client.get(URL, params=params)
    assert answer.status_code == 400 and says in answer.text


def test_an_unknown_environment_is_404(client):
    assert client.get("/api/v1/environments/nope/logs").status_code == 404


@pytest.mark.timeout(60)  # a follow that never brings the new line would otherwise wait for the suite's limit
def test_follow_streams_the_newest_lines_then_new_ones(ctx, env_id, client):
    got = []
    with client.stream("GET", URL, params={"follow": "true", "level": "ERROR", "limit": 1}) as answer:
        assert answer.headers["content-type"].startswith("application/x-ndjson")
        for line in answer.iter_lines():
            if not line:
                continue
            got.append(json.loads(line)["message"])
            if got == ["boom"]:  # the backlog is in: lines added now come as they are added
                ctx.logs.append(env_id, "scheduler", [(T.format(5), "ERROR", "new error"), (T.format(6), "INFO", "quiet")])
            elif got == ["boom", "new error"]:
                shutil.rmtree(ctx.settings.environments_dir / env_id)  # deleted: the stream ends
    assert got == ["boom", "new error"]
