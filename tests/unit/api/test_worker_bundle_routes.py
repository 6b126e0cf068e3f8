"""The worker bundle routes over HTTP with a real store: only a worker token opens them, addresses
follow the Host the host used, the embedded database is refused with its own code, and the
secrets in the answer reach no log and no audit entry."""
from __future__ import annotations

import io
import logging
import tarfile

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hangar.api import audit
from hangar.api import errors as api_errors
from hangar.api.routes import workers as worker_routes
from hangar.context import Context
from hangar.domain import workers
from hangar.domain.audit import read_audit
from hangar.store import repository
from tests.unit.domain.test_worker_bundle import running_env

ADMIN_KEY = "hgr_test-admin-key"


@pytest.fixture
def client(ctx: Context) -> TestClient:
    app = FastAPI()
    api_errors.install(app)
    audit.install(app)
    app.include_router(worker_routes.router)
    app.state.ctx = ctx
    app.state.admin_key = ADMIN_KEY
    with TestClient(app) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_bundle_and_archives_answer_a_worker_token(ctx, client, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    env_id, _, dags = running_env(ctx, tmp_path, "sales")
    token = workers.issue_token(ctx, name="sales").token
    answer = client.get("/api/v1/environments/sales/worker-bundle",
                        headers={**bearer(token), "Host": "cp.example.com:8765"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    bundle = answer.json()
    assert bundle["environment_id"] == env_id and bundle["queue"] == f"hangar.{env_id}"
    assert bundle["env"]["AIRFLOW__CELERY__BROKER_URL"] == "redis://:BROKER-PASSWORD@cp.example.com:6379/0"
    assert "http://cp.example.com:28123/execution/" in bundle["airflow_cfg"]

    dags_archive = client.get("/api/v1/environments/sales/worker-bundle/dags.tar.gz", headers=bearer(token))
    assert dags_archive.status_code == 200 and dags_archive.headers["content-type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(dags_archive.content)) as tar:
        assert tar.getnames() == ["hello.py"]
    plugins_archive = client.get("/api/v1/environments/sales/worker-bundle/plugins.tar.gz", headers=bearer(token))
    with tarfile.open(fileobj=io.BytesIO(plugins_archive.content)) as tar:
        assert tar.getnames() == ["hangar_login.py"]

    with ctx.store.session() as session:
        secrets = repository.get_secrets(session, ctx.envelope, env_id=env_id)
    logged = caplog.text + str([entry.model_dump() for entry in read_audit(ctx)])
    for value in (*secrets.values(), token, "BROKER-PASSWORD", "DB-PASSWORD"):
        assert value not in logged


def test_only_a_worker_token_of_the_environment_opens_them(ctx, client, tmp_path):
    running_env(ctx, tmp_path, "sales")
    for path in ("/worker-bundle", "/worker-bundle/dags.tar.gz", "/worker-bundle/plugins.tar.gz"):
        for headers in ({}, bearer(ADMIN_KEY), bearer("hwt_guessed")):
            response = client.get(f"/api/v1/environments/sales{path}", headers=headers)
            assert response.status_code == 401 and response.json()["error"]["code"] == "WORKER_TOKEN_INVALID", path
    created = workers.issue_token(ctx, name="sales")
    workers.revoke_token(ctx, name="sales", token_id=created.id)
    revoked = client.get("/api/v1/environments/sales/worker-bundle", headers=bearer(created.token))
    assert revoked.status_code == 403 and revoked.json()["error"]["code"] == "WORKER_TOKEN_REVOKED"


def test_the_embedded_database_is_refused_with_409_and_the_way_out(ctx, client, tmp_path):
    running_env(ctx, tmp_path, "embedded", db_url=None)
    token = workers.issue_token(ctx, name="embedded").token
    response = client.get("/api/v1/environments/embedded/worker-bundle", headers=bearer(token))
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "REMOTE_WORKERS_NEED_REACHABLE_DATABASE"
    assert "--metadata-db-url" in error["message"] and "fernet" not in response.text.lower()
