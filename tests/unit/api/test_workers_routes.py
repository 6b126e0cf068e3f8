"""The worker token and joined-host routes over HTTP with a real store: who may call what,
worker tokens accepted only where a route asks for one, each bad token answered with its own
code, and no token in any answer, log line or audit entry.

The app is assembled here rather than with create_app, whose lifespan starts the
embedded PostgreSQL; it has the same error handlers, audit middleware and auth.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient

from hangar.api import audit
from hangar.api import errors as api_errors
from hangar.api.routes import environments as environment_routes
from hangar.api.routes import workers as worker_routes
from hangar.api.routes.workers import require_worker_token
from hangar.context import Context
from hangar.domain.access import Role, create_access_key
from hangar.domain.audit import read_audit
from hangar.domain.workers import VerifiedWorkerToken
from hangar.store.models import AuditRow
from tests.unit.domain.test_workers import make_env

ADMIN_KEY = "hgr_test-admin-key"
HEARTBEAT = {"hostname": "edge-1", "concurrency": 8, "state": "RUNNING", "running_tasks": 2,
             "workers": ["celery@edge-1"], "airflow_version": "3.3.2", "runtime_key": "rt-1"}

# what a route added later for joined hosts looks like: one dependency, nothing else
bundle = APIRouter(prefix="/api/v1/environments/{name}")


@bundle.get("/worker-probe")
def worker_bundle(caller: VerifiedWorkerToken = Depends(require_worker_token)) -> dict:
    return {"environment": caller.environment, "token_id": caller.token_id}


@pytest.fixture
def client(ctx: Context, tmp_path: Path) -> TestClient:
    app = FastAPI()
    api_errors.install(app)
    audit.install(app)
    app.include_router(environment_routes.router)
    app.include_router(worker_routes.router)
    app.include_router(bundle)
    app.state.ctx = ctx
    app.state.admin_key = ADMIN_KEY
    make_env(ctx, tmp_path, "sales")
    make_env(ctx, tmp_path, "ops")
    with TestClient(app, headers=bearer(ADMIN_KEY)) as test_client:
        yield test_client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def key_for(ctx: Context, role: Role) -> dict[str, str]:
    return bearer(create_access_key(ctx, role=role).api_key)


def issue(client: TestClient, name: str = "sales", **body) -> dict:
    response = client.post(f"/api/v1/environments/{name}/worker-tokens", json=body or None)
    assert response.status_code == 201, response.text
    return response.json()


def heartbeat(client: TestClient, token: str, name: str = "sales", **overrides):
    return client.post(f"/api/v1/environments/{name}/workers/heartbeat", json={**HEARTBEAT, **overrides},
                       headers=bearer(token))


def error(response) -> str:
    return response.json()["error"]["code"]


def test_issue_list_heartbeat_and_list_hosts(client):
    created = issue(client, label="edge rack")
    assert set(created) == {"id", "token", "label", "created_at"} and created["token"].startswith("hwt_")
    listed = client.get("/api/v1/environments/sales/worker-tokens")
    assert listed.status_code == 200
    assert [(t["id"], t["label"], t["revoked"], t["hosts"]) for t in listed.json()] == [
        (created["id"], "edge rack", False, 0)]
    assert created["token"] not in listed.text

    beat = heartbeat(client, created["token"])
    assert beat.status_code == 200, beat.text
    assert beat.json() == {"accepted": True, "revoked": False, "lost_after_seconds": 30.0}

    hosts = client.get("/api/v1/environments/sales/workers")
    assert hosts.status_code == 200
    (host,) = hosts.json()
    assert (host["hostname"], host["address"], host["status"], host["state"]) == ("edge-1", "testclient", "ACTIVE",
                                                                                  "RUNNING")
    assert (host["concurrency"], host["running_tasks"], host["workers"]) == (8, 2, ["celery@edge-1"])
    assert host["heartbeat_age_seconds"] < 5 and host["token_id"] == created["id"]
    assert client.get("/api/v1/environments/ops/workers").json() == []


def test_a_local_environment_gets_a_clear_error(ctx, client, tmp_path):
    make_env(ctx, tmp_path, "solo", executor="local")
    response = client.post("/api/v1/environments/solo/worker-tokens", json={})
    assert response.status_code == 400
    assert error(response) == "EXECUTOR_NOT_CELERY"
    assert "local executor" in response.json()["error"]["message"]
    missing = client.post("/api/v1/environments/ghost/worker-tokens")
    assert missing.status_code == 404 and error(missing) == "ENVIRONMENT_NOT_FOUND"


def test_a_wrong_token_is_401(client):
    issue(client)
    for token in ("hwt_wrong", "nonsense", ADMIN_KEY):
        response = heartbeat(client, token)
        assert response.status_code == 401, token
        assert error(response) == "WORKER_TOKEN_INVALID"
    no_header = client.post("/api/v1/environments/sales/workers/heartbeat", json=HEARTBEAT,
                            headers={"Authorization": ""})
    assert no_header.status_code == 401 and error(no_header) == "WORKER_TOKEN_INVALID"
    assert client.get("/api/v1/environments/sales/workers").json() == []


def test_a_revoked_token_is_403_so_the_host_stops(client):
    created = issue(client)
    assert heartbeat(client, created["token"]).status_code == 200
    revoked = client.delete(f"/api/v1/environments/sales/worker-tokens/{created['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True and revoked.json()["hosts"] == 1
    response = heartbeat(client, created["token"])
    assert response.status_code == 403
    assert error(response) == "WORKER_TOKEN_REVOKED"
    assert client.get("/api/v1/environments/sales/worker-probe", headers=bearer(created["token"])).status_code == 403
    (host,) = client.get("/api/v1/environments/sales/workers").json()
    assert host["status"] == "REVOKED"
    unknown = client.delete("/api/v1/environments/sales/worker-tokens/wt_000000000000")
    assert unknown.status_code == 400 and error(unknown) == "WORKER_TOKEN_NOT_FOUND"


def test_a_token_of_one_environment_is_refused_by_another(client):
    sales = issue(client, "sales")
    response = heartbeat(client, sales["token"], name="ops")
    assert response.status_code == 401 and error(response) == "WORKER_TOKEN_INVALID"
    bundle_other = client.get("/api/v1/environments/ops/worker-probe", headers=bearer(sales["token"]))
    assert bundle_other.status_code == 401
    assert client.get("/api/v1/environments/ops/workers").json() == []
    revoke_other = client.delete(f"/api/v1/environments/ops/worker-tokens/{sales['id']}")
    assert revoke_other.status_code == 400 and error(revoke_other) == "WORKER_TOKEN_NOT_FOUND"


def test_worker_tokens_open_only_worker_routes(client):
    token = issue(client)["token"]
    as_worker = bearer(token)
    for method, path in [("GET", "/api/v1/environments/sales"), ("GET", "/api/v1/environments"),
                         ("GET", "/api/v1/environments/sales/workers"),
                         ("GET", "/api/v1/environments/sales/worker-tokens"),
                         ("POST", "/api/v1/environments/sales/worker-tokens"),
                         ("POST", "/api/v1/environments/sales/token")]:
        response = client.request(method, path, headers=as_worker)
        assert response.status_code == 401, (method, path, response.text)
    got = client.get("/api/v1/environments/sales/worker-probe", headers=as_worker)
    assert got.status_code == 200 and got.json()["environment"] == "sales"
    # and the API's own keys do not open worker routes
    assert client.get("/api/v1/environments/sales/worker-probe").status_code == 401


def test_roles(ctx, client):
    created = issue(client)
    for role in (Role.Op, Role.User, Role.Viewer):
        headers = key_for(ctx, role)
        assert client.post("/api/v1/environments/sales/worker-tokens", headers=headers).status_code == 403, role
        assert client.get("/api/v1/environments/sales/worker-tokens", headers=headers).status_code == 200
        assert client.get("/api/v1/environments/sales/workers", headers=headers).status_code == 200
    for role in (Role.User, Role.Viewer):
        path = f"/api/v1/environments/sales/worker-tokens/{created['id']}"
        assert client.delete(path, headers=key_for(ctx, role)).status_code == 403
    assert client.delete(f"/api/v1/environments/sales/worker-tokens/{created['id']}",
                         headers=key_for(ctx, Role.Op)).status_code == 200


@pytest.mark.parametrize("overrides", [{"state": "SLEEPING"}, {"hostname": "no spaces"}, {"concurrency": -1},
                                       {"hostname": None}])
def test_bad_heartbeats_are_400(client, overrides):
    token = issue(client)["token"]
    response = heartbeat(client, token, **overrides)
    assert response.status_code == 400 and error(response) == "VALIDATION_ERROR"


def test_a_bad_heartbeat_without_a_token_is_401_not_400(client):
    response = client.post("/api/v1/environments/sales/workers/heartbeat", json={"state": "SLEEPING"},
                           headers=bearer("hwt_wrong"))
    assert response.status_code == 401


def test_no_token_in_answers_logs_or_audit(ctx, client, caplog):
    caplog.set_level(logging.DEBUG)
    created = issue(client, label="audited")
    token = created["token"]
    heartbeat(client, token)
    heartbeat(client, token, name="ops")
    client.delete(f"/api/v1/environments/sales/worker-tokens/{created['id']}")
    heartbeat(client, token)
    texts = [client.get("/api/v1/environments/sales/worker-tokens").text,
             client.get("/api/v1/environments/sales/workers").text, caplog.text]
    with ctx.store.session() as session:
        texts += [repr(vars(row)) for row in session.query(AuditRow).all()]
    for text in texts:
        assert token not in text and token.removeprefix("hwt_") not in text
    entries = [(e.action, e.target, e.principal, e.status_code) for e in read_audit(ctx)][::-1]
    assert entries == [
        ("workers.token_create", "sales", "admin", 201),
        # an accepted heartbeat only refreshes the host's record; refusals are audited, those
        # from one source within a minute as one entry that counts them
        ("workers.heartbeat", "ops (and 1 more refused calls from testclient this minute)", "anonymous", 401),
        ("workers.token_revoke", "sales", "admin", 200),
    ]
