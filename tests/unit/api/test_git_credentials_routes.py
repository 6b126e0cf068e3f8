"""Git credential routes over HTTP with a real store: Admin only, the secret encrypted at rest and
never answered, kinds checked, and a credential an environment names kept until it is unused."""
from __future__ import annotations


import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hangar.api import audit
from hangar.api import errors as api_errors
from hangar.api.routes import git as git_routes
from hangar.context import Context
from hangar.domain import git_credentials
from hangar.domain.access import Role, create_access_key
from hangar.store.git_credentials import GitCredentialRow

ADMIN_KEY = "hgr_test-admin-key"
TOKEN = "ghp_exampletokenvalue1234567890"
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
HOSTS = "[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample\n"


@pytest.fixture
def client(ctx: Context) -> TestClient:
    app = FastAPI()
    api_errors.install(app)
    audit.install(app)
    app.include_router(git_routes.router)
    app.state.ctx, app.state.admin_key = ctx, ADMIN_KEY
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as test_client:
        yield test_client


def test_a_token_is_stored_encrypted_and_never_answered(client, ctx):
    created = client.post("/api/v1/git-credentials", json={"name": "gh", "token": TOKEN})
    assert created.status_code == 201, created.text
    assert TOKEN not in created.text and created.json()["kind"] == "token"
    listed = client.get("/api/v1/git-credentials")
    assert [c["name"] for c in listed.json()] == ["gh"] and TOKEN not in listed.text
    with ctx.store.session() as session:
        row = session.get(GitCredentialRow, "gh")
        assert TOKEN.encode() not in row.secret and TOKEN.encode() not in row.secret_key
    opened = git_credentials.open_credential(ctx, name="gh")
    assert opened.secret == TOKEN and TOKEN not in repr(opened)


def test_an_ssh_key_needs_a_pinned_host_key(client):
    missing = client.post("/api/v1/git-credentials", json={"name": "deploy", "ssh_key": KEY})
    assert missing.status_code == 400 and "known_hosts" in missing.text
    created = client.post("/api/v1/git-credentials", json={"name": "deploy", "ssh_key": KEY, "known_hosts": HOSTS})
    assert created.status_code == 201 and created.json()["hosts"] == ["[127.0.0.1]:2222"]
    assert "PRIVATE KEY" not in created.text


@pytest.mark.parametrize("body, words", [
    ({"name": "x"}, "either token"),
    ({"name": "x", "token": "a b"}, "one line"),
    ({"name": "x", "token": TOKEN, "ssh_key": KEY, "known_hosts": HOSTS}, "not both"),
    ({"name": "x", "ssh_key": "not a key", "known_hosts": HOSTS}, "private key"),
    ({"name": "9x", "token": TOKEN}, "name"),
])
def test_bad_credentials_are_refused_by_name(client, body, words):
    answer = client.post("/api/v1/git-credentials", json=body)
    assert answer.status_code == 400 and words in answer.text, answer.text
    assert TOKEN not in answer.text
    assert client.get("/api/v1/git-credentials").json() == []


def test_a_duplicate_is_409_and_only_admin_may_manage(client, ctx):
    assert client.post("/api/v1/git-credentials", json={"name": "gh", "token": TOKEN}).status_code == 201
    assert client.post("/api/v1/git-credentials", json={"name": "gh", "token": TOKEN + "x"}).status_code == 409
    assert git_credentials.open_credential(ctx, name="gh").secret == TOKEN
    op = create_access_key(ctx, role=Role.Op).api_key
    refused = client.get("/api/v1/git-credentials", headers={"Authorization": f"Bearer {op}"})
    assert refused.status_code == 403
    refused = client.delete("/api/v1/git-credentials/gh", headers={"Authorization": f"Bearer {op}"})
    assert refused.status_code == 403
    assert client.delete("/api/v1/git-credentials/nope").status_code == 404
    assert client.delete("/api/v1/git-credentials/gh").status_code == 204
    assert client.get("/api/v1/git-credentials").json() == []
