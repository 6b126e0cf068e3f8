"""A console over a real store, assembled like create_app's (admission, error pages, audit) but
without the lifespan that starts the embedded PostgreSQL. `signed_in(role)` gives a client whose
session cookie belongs to a new access key of that role; `csrf(client)` its form token."""
from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hangar.api import admission, audit
from hangar.api import errors as api_errors
from hangar.api.console import app as console
from hangar.context import Context
from hangar.domain.access import Role, create_access_key

ADMIN_KEY = "hgr_test-admin-key"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def app(ctx: Context) -> FastAPI:
    app = FastAPI()
    api_errors.install(app)
    admission.install(app)
    audit.install(app)
    console.install(app)
    app.state.ctx = ctx
    app.state.admin_key = ADMIN_KEY
    return app


def sign_in(client: TestClient, key_id: str, secret: str, *, next_: str = "/console"):
    form = client.get("/console/sign-in", params={"next": next_})
    nonce = CSRF.search(form.text)[1]
    return client.post("/console/sign-in", data={"access_key_id": key_id, "secret_access_key": secret,
                                                 "csrf": nonce, "next": next_}, follow_redirects=False)


def csrf(client: TestClient, path: str = "/console") -> str:
    return CSRF.search(client.get(path).text)[1]


@pytest.fixture
def signed_in(app: FastAPI, ctx: Context):
    clients: list[TestClient] = []

    def make(role: Role | str = Role.Admin) -> TestClient:
        role = Role.parse(role) if isinstance(role, str) else role
        key = create_access_key(ctx, role=role)
        client = TestClient(app, base_url="http://testserver")
        client.__enter__()
        clients.append(client)
        answer = sign_in(client, key.access_key_id, key.secret_access_key)
        assert answer.status_code == 303, answer.text
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
