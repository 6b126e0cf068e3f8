"""Requests that used to end in a server error get the 4xx that names the cause: query
values out of range, a forged MWAA NextToken, two creates of one name at once; and a PATCH
that changes nothing adds no revision."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from fastapi import FastAPI
from pydantic import ValidationError as PydanticValidationError
from fastapi.testclient import TestClient

from hangar.api import audit
from hangar.api import errors as api_errors
from hangar.api.mwaa.shapes import CreateEnvironmentInput, decode_token, encode_token
from hangar.api.routes import access as access_routes
from hangar.api.routes import environments as environment_routes
from hangar.context import Context
from hangar.domain import environments
from hangar.schemas.spec import EnvironmentCreate, EnvironmentUpdate
from hangar.domain.status import Status
from hangar.errors import EnvironmentAlreadyExists, ValidationFailed
from hangar.store import repository

ADMIN_KEY = "hgr_test-admin-key"


@pytest.fixture
def client(ctx: Context) -> TestClient:
    app = FastAPI()
    api_errors.install(app)
    audit.install(app)
    app.include_router(environment_routes.router)
    app.include_router(access_routes.router)
    app.state.ctx = ctx
    app.state.admin_key = ADMIN_KEY
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as test_client:
        yield test_client


def _create(ctx: Context, tmp_path: Path, name: str) -> str:
    dags = tmp_path / "dags"
    dags.mkdir(exist_ok=True)
    environments.create_environment(ctx, request=EnvironmentCreate(name=name, dags=str(dags)))
    with ctx.store.session() as session:
        return repository.get_live(session, name).id


def _running(ctx: Context, env_id: str) -> None:
    """As a finished create leaves it."""
    with ctx.store.session() as session:
        env = repository.get_by_id(session, env_id)
        env.status, env.running_revision, env.last_good_revision = Status.AVAILABLE, env.revision, env.revision
        repository.close_operations(session, env.id, step="done")


@pytest.mark.parametrize("minutes", ["nan", "inf", "-inf", "1e308", "0", "-5"])
def test_worker_samples_minutes_out_of_range_is_400(ctx, client, tmp_path, minutes):
    _create(ctx, tmp_path, "samples")
    response = client.get("/api/v1/environments/samples/worker-samples", params={"minutes": minutes})
    assert response.status_code == 400, response.text
    assert "minutes" in response.text
    assert client.get("/api/v1/environments/samples/worker-samples", params={"minutes": 30}).status_code == 200


@pytest.mark.parametrize("limit", ["9223372036854775808", "-1", "0", "100000"])
def test_audit_limit_out_of_range_is_400(client, limit):
    response = client.get("/api/v1/audit", params={"limit": limit})
    assert response.status_code == 400, response.text
    assert "limit" in response.text
    assert client.get("/api/v1/audit", params={"limit": 5}).status_code == 200


@pytest.mark.parametrize("payload", [{"after": 5}, {"after": None}, {"after": ["a"]}, ["after"], "after"])
def test_a_next_token_this_api_did_not_return_is_refused(payload):
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()
    with pytest.raises(ValidationFailed, match="NextToken"):
        decode_token(forged)
    assert decode_token(encode_token("env-b")) == "env-b"


def test_two_creates_of_one_name_at_once_give_409_not_500(ctx, tmp_path, monkeypatch):
    _create(ctx, tmp_path, "twin")
    # the second create passed its check before the first was stored, as in a burst of creates
    monkeypatch.setattr(repository, "find_live", lambda session, name: None)
    with pytest.raises(EnvironmentAlreadyExists):
        environments.create_environment(ctx, request=EnvironmentCreate(name="twin", dags=str(tmp_path / "dags")))
    with ctx.store.session() as session:
        assert len([e for e in repository.list_live(session) if e.name == "twin"]) == 1


def test_a_patch_that_changes_nothing_adds_no_revision(ctx, client, tmp_path):
    env_id = _create(ctx, tmp_path, "still")
    _running(ctx, env_id)
    same = client.patch("/api/v1/environments/still", json={"dags": str(tmp_path / "dags")})
    assert same.status_code == 200, same.text
    assert same.json()["status"] == "AVAILABLE"
    with ctx.store.session() as session:
        env = repository.get_by_id(session, env_id)
        assert env.revision == 1 and repository.open_operations(session, env_id) == []
    changed = environments.update_environment(ctx, name="still", request=EnvironmentUpdate(environment_variables={"A": "1"}))
    assert changed.status == "UPDATING"
    with ctx.store.session() as session:
        assert repository.get_by_id(session, env_id).revision == 2


@pytest.mark.parametrize("path", ["../../etc/passwd", "/dags", "dags/../../x", "./dags", "a//b", "dags\\x"])
def test_an_s3_path_outside_the_bucket_is_refused_at_the_request(path):
    fields = {"ExecutionRoleArn": "arn:aws:iam::123456789012:role/r",
              "SourceBucketArn": "arn:aws:s3:::b", "NetworkConfiguration": {}}
    with pytest.raises(PydanticValidationError, match="is not a path in the bucket"):
        CreateEnvironmentInput(**fields, DagS3Path=path)
    with pytest.raises(PydanticValidationError, match="is not a path in the bucket"):
        CreateEnvironmentInput(**fields, DagS3Path="dags", RequirementsS3Path=path)
    for good in ("dags", "dags/", "team/dags", "requirements.txt"):
        assert CreateEnvironmentInput(**fields, DagS3Path=good).DagS3Path == good


def test_the_api_description_needs_a_key(ctx):
    from hangar.api.app import create_app
    from hangar.settings import Settings

    app = create_app(Settings(home=ctx.settings.home))
    app.state.ctx, app.state.admin_key = ctx, ADMIN_KEY  # no lifespan: the control plane is not started
    anonymous = TestClient(app)
    for path in ("/openapi.json", "/docs", "/redoc", "/api/v1/openapi.json"):
        assert anonymous.get(path).status_code in (401, 403, 404), path
    document = anonymous.get("/api/v1/openapi.json", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert document.status_code == 200 and "/api/v1/environments" in document.json()["paths"]
    assert anonymous.get("/health").status_code == 200


def test_a_process_bomb_by_configuration_is_refused_before_anything_is_stored(ctx, client, tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir(exist_ok=True)
    response = client.post("/api/v1/environments", json={
        "name": "bomb", "dags": str(dags), "environment_class": "mw1.large", "schedulers": 2,
        "airflow_configuration_options": {"core.parallelism": "200"}})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "TASK_PROCESS_LIMIT_EXCEEDED"
    assert "up to 400 task processes" in error["message"] and "HANGAR_MAX_TASK_PROCESSES" in error["message"]
    assert client.get("/api/v1/environments").json() == []
