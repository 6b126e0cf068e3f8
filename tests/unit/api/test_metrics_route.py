"""GET /metrics through the control plane's own admission: 401 without a key, any role's key
or a scrape token reads it, and a scrape token reads nothing else."""
from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hangar.api import admission, timing
from hangar.api import errors as api_errors
from hangar.api.routes import environments as environment_routes
from hangar.api.routes import metrics as metrics_routes
from hangar.domain.access import Role, create_access_key
from hangar.domain.metrics import hangar_families
from tests.unit.domain.test_workers import make_env

ADMIN_KEY = "hgr_test-admin-key"


@pytest.fixture
def client(ctx, tmp_path):
    app = FastAPI()
    api_errors.install(app)
    admission.install(app)
    timing.install(app)
    app.include_router(environment_routes.router)
    app.include_router(metrics_routes.router)
    app.state.ctx = ctx
    app.state.admin_key = ADMIN_KEY
    ctx.telemetry.add_source(lambda: hangar_families(ctx))
    make_env(ctx, tmp_path, "sales", executor="celery")
    with TestClient(app) as test_client:
        yield test_client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_without_a_valid_key_it_is_401(client):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=bearer("HKIANOPE:wrong")).status_code == 401


@pytest.mark.parametrize("role", [Role.Viewer, Role.Admin, Role.Scrape])
def test_any_role_and_a_scrape_token_read_it(ctx, client, role):
    key = create_access_key(ctx, role=role).api_key
    answer = client.get("/metrics", headers=bearer(key))
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert 'hangar_environment_status{environment="sales",status="CREATING"} 1.0' in text
    assert 'hangar_workers_min{environment="sales"} 1.0' in text
    assert "# TYPE hangar_api_request_duration_seconds histogram" in text
    assert "# TYPE hangar_reconcile_duration_seconds histogram" in text


def test_a_scrape_token_reads_nothing_else(ctx, client):
    key = create_access_key(ctx, role=Role.Scrape).api_key
    answer = client.get("/api/v1/environments", headers=bearer(key))
    assert answer.status_code == 403 and "scrape token" in answer.text
    assert client.get("/api/v1/environments", headers=bearer(ADMIN_KEY)).status_code == 200


def test_request_latency_is_kept_by_route_template(ctx, client):
    client.get("/api/v1/environments/sales", headers=bearer(ADMIN_KEY))
    text = client.get("/metrics", headers=bearer(ADMIN_KEY)).text
    assert 'hangar_api_request_duration_seconds_count{method="GET",route="/api/v1/environments/{name}"} 1.0' in text
