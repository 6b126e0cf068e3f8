"""The KMS key routes and the fernet rotation route over HTTP with a real store: roles,
key references with slashes and ARNs in the path, no key material in any answer, errors
and the audit log.

The app is assembled here rather than with create_app, whose lifespan starts the
embedded PostgreSQL; it has the same error handlers, audit middleware and auth.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hangar.api import audit
from hangar.api import errors as api_errors
from hangar.api.routes import keys as key_routes
from hangar.context import Context
from hangar.domain import environments, keys
from hangar.domain.access import Role, create_access_key
from hangar.domain.audit import read_audit
from hangar.schemas.spec import EnvironmentCreate
from hangar.domain.status import Status
from hangar.store import repository
from hangar.store.models import KmsKeyVersionRow

ADMIN_KEY = "hgr_test-admin-key"


@pytest.fixture
def client(ctx: Context) -> TestClient:
    app = FastAPI()
    api_errors.install(app)
    audit.install(app)
    app.include_router(key_routes.router)
    app.state.ctx = ctx
    app.state.admin_key = ADMIN_KEY
    keys.ensure_default_key(ctx)
    with TestClient(app, headers=bearer(ADMIN_KEY)) as test_client:
        yield test_client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def key_for(ctx: Context, role: Role) -> dict[str, str]:
    return bearer(create_access_key(ctx, role=role).api_key)


def test_create_list_get_and_rotate(client):
    created = client.post("/api/v1/keys", json={"alias": "alias/team/a", "description": "team A"})
    assert created.status_code == 201, created.text
    key = created.json()
    assert set(key) == {"key_id", "arn", "alias", "description", "key_manager", "current_version", "versions",
                        "created_at", "rotated_at"}
    listed = client.get("/api/v1/keys").json()
    assert [k["alias"] for k in listed] == ["alias/hangar/default", "alias/team/a"]

    for ref in (key["key_id"], "alias/team/a", key["arn"], "arn:aws:kms:us-east-1:123456789012:alias/team/a"):
        got = client.get(f"/api/v1/keys/{quote(ref, safe='/:')}")
        assert got.status_code == 200 and got.json()["key_id"] == key["key_id"], ref

    rotated = client.post("/api/v1/keys/alias/team/a/rotate")
    assert rotated.status_code == 200, rotated.text
    assert (rotated.json()["current_version"], rotated.json()["versions"], rotated.json()["rewrapped"]) == (2, 2, 0)
    assert rotated.json()["rotated_at"] is not None
    again = client.post(f"/api/v1/keys/{key['arn']}/rotate").json()
    assert again["current_version"] == 3


def test_no_key_material_in_any_answer(ctx, client):
    key = client.post("/api/v1/keys", json={}).json()
    client.post(f"/api/v1/keys/{key['key_id']}/rotate")
    texts = [client.get("/api/v1/keys").content, client.get(f"/api/v1/keys/{key['key_id']}").content,
             client.post(f"/api/v1/keys/{key['key_id']}/rotate").content]
    with ctx.store.session() as session:
        for version in session.query(KmsKeyVersionRow).all():
            material = repository.kms_material(session, ctx.envelope, key_id=version.key_id, version=version.version)
            for text in texts:
                assert material not in text and material.hex().encode() not in text
                assert version.wrapped_material not in text


@pytest.mark.parametrize(("body", "code"), [
    ({"alias": "no-prefix"}, "VALIDATION_ERROR"),
    ({"alias": "alias/hangar/mine"}, "VALIDATION_ERROR"),
    ({"alias": "alias/x", "material": "AAAA"}, "VALIDATION_ERROR"),
])
def test_bad_creates_are_400(client, body, code):
    response = client.post("/api/v1/keys", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_duplicate_alias_and_unknown_key(client):
    client.post("/api/v1/keys", json={"alias": "alias/once"})
    duplicate = client.post("/api/v1/keys", json={"alias": "alias/once"})
    assert duplicate.status_code == 400 and duplicate.json()["error"]["code"] == "KMS_ALIAS_EXISTS"
    unknown = client.post("/api/v1/keys/alias/ghost/rotate")
    assert unknown.status_code == 400
    assert unknown.json()["error"] == {"code": "KMS_KEY_NOT_FOUND", "message": unknown.json()["error"]["message"]}
    assert "alias/ghost" in unknown.json()["error"]["message"]


@pytest.mark.parametrize("role", [Role.Op, Role.User, Role.Viewer])
def test_keys_are_admin_only(ctx, client, role):
    headers = key_for(ctx, role)
    assert client.get("/api/v1/keys", headers=headers).status_code == 403
    assert client.post("/api/v1/keys", json={}, headers=headers).status_code == 403
    assert client.post("/api/v1/keys/alias/hangar/default/rotate", headers=headers).status_code == 403
    assert client.get("/api/v1/keys", headers=bearer("HKIAWRONG:nope")).status_code == 401


def test_mutations_are_audited_with_the_key_as_target(ctx, client):
    client.post("/api/v1/keys", json={"alias": "alias/audited"})
    client.post("/api/v1/keys/alias/audited/rotate")
    client.post("/api/v1/keys/alias/ghost/rotate")
    entries = [(e.action, e.target, e.outcome, e.status_code) for e in read_audit(ctx)][:3]
    assert entries == [
        ("keys.rotate", "alias/ghost", "error", 400),
        ("keys.rotate", "alias/audited", "success", 200),
        ("keys.create", None, "success", 201),
    ]


def _available(ctx: Context, tmp_path: Path, name: str) -> None:
    dags = tmp_path / "dags"
    dags.mkdir(exist_ok=True)
    environments.create_environment(ctx, request=EnvironmentCreate(name=name, dags=str(dags)))
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        env.status, env.running_revision = Status.AVAILABLE, 1
        repository.close_operations(session, env.id, step="done")  # as the create's end does


def test_rotate_fernet_needs_op(ctx, client, tmp_path):
    _available(ctx, tmp_path, "fern")
    for role in (Role.User, Role.Viewer):
        assert client.post("/api/v1/environments/fern/rotate-fernet", headers=key_for(ctx, role)).status_code == 403
    response = client.post("/api/v1/environments/fern/rotate-fernet", headers=key_for(ctx, Role.Op))
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "UPDATING"
    busy = client.post("/api/v1/environments/fern/rotate-fernet")
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "ENVIRONMENT_BUSY"
    missing = client.post("/api/v1/environments/nope/rotate-fernet")
    assert missing.status_code == 404
    actions = [(e.action, e.target, e.status_code) for e in read_audit(ctx)]
    assert ("environments.rotate_fernet", "fern", 202) in actions
