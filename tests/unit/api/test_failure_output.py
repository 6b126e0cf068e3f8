"""A failed startup script's output: known secrets cut out before it is stored, and the output
shown only to Op and Admin (Viewer and User see Hangar's one-line summary).

The issue this guards: as Op, a startup script `echo ADMINKEY=$(cat admin.key); exit 7` put
the admin key into last_update.error.message, which a Viewer could read."""
from __future__ import annotations

import base64

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hangar.api import errors as api_errors
from hangar.api.routes import environments as environment_routes
from hangar.context import Context
from hangar.domain.access import Role, create_access_key
from hangar.domain.redaction import REDACTED, secret_values
from hangar.domain.status import Status
from hangar.errors import StartupScriptFailed
from hangar.reconciler.reconciler import Reconciler
from hangar.reconciler.queue import Work
from hangar.store import repository
from tests.unit.domain.test_operations import make_env

ADMIN_KEY = "hgr_the-admin-key-of-this-test"


@pytest.fixture
def app(ctx: Context) -> FastAPI:
    ctx.settings.api_key_file.write_text(ADMIN_KEY)
    ctx.settings.master_key_file.write_bytes(bytes(range(32)))
    app = FastAPI()
    api_errors.install(app)
    app.include_router(environment_routes.router)
    app.state.ctx, app.state.admin_key = ctx, ADMIN_KEY
    return app


def failed_startup_script(ctx: Context, output: str) -> str:
    """An environment whose create failed on its startup script with `output`; its name."""
    env_id, operation_id = make_env(ctx, Status.CREATING)
    with ctx.store.session() as session:
        repository.put_secret(session, ctx.envelope, env_id=env_id, name="fernet_key", value="FERNET-of-this-env-0123")
    Reconciler(ctx).fail(Work(env_id=env_id, operation_id=operation_id),
                         StartupScriptFailed(f"startup script exited with code 7; its last output:\n{output}"))
    with ctx.store.session() as session:
        return repository.get_by_id(session, env_id).name


def test_every_known_secret_is_cut_out_before_the_text_is_stored(app: FastAPI, ctx: Context) -> None:
    op = create_access_key(ctx, role=Role.Op)
    master = bytes(range(32))
    name = failed_startup_script(ctx, "\n".join([
        f"ADMINKEY={ADMIN_KEY}", f"MASTER={base64.b64encode(master).decode()}", f"HEX={master.hex()}",
        f"OPSECRET={op.secret_access_key}", "FERNET=FERNET-of-this-env-0123", "ID=0"]))
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        message = client.get(f"/api/v1/environments/{name}").json()["last_update"]["error"]["message"]
        reasons = [e["reason"] for e in client.get(f"/api/v1/environments/{name}/events").json()]
    assert message.splitlines()[1:] == [f"ADMINKEY={REDACTED}", f"MASTER={REDACTED}", f"HEX={REDACTED}",
                                        f"OPSECRET={REDACTED}", f"FERNET={REDACTED}", "ID=0"]
    assert not any(ADMIN_KEY in reason or op.secret_access_key in reason for reason in reasons)


@pytest.mark.parametrize("role, sees", [(Role.Viewer, False), (Role.User, False), (Role.Op, True), (Role.Admin, True)])
def test_the_output_is_for_the_roles_that_may_change_the_script(app: FastAPI, ctx: Context, role: Role,
                                                                 sees: bool) -> None:
    name = failed_startup_script(ctx, "line one of the script's output\nline two")
    key = create_access_key(ctx, role=role).api_key
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as client:
        env = client.get(f"/api/v1/environments/{name}").json()
        listed = next(e for e in client.get("/api/v1/environments").json() if e["name"] == name)
        events = client.get(f"/api/v1/environments/{name}/events").json()
    texts = [env["last_update"]["error"]["message"], env["status_reason"], listed["last_update"]["error"]["message"],
             *[e["reason"] for e in events]]
    assert any("line two" in text for text in texts) is sees
    assert env["last_update"]["error"]["message"].startswith("startup script exited with code 7")
    if not sees:
        assert env["last_update"]["error"]["message"].endswith("[the output that follows is shown to Op and Admin]")


def test_secret_values_include_passwords_inside_urls(ctx: Context) -> None:
    ctx.settings.celery_broker_url = "redis://:br0ker-pass@127.0.0.1:6379/0"
    assert {"redis://:br0ker-pass@127.0.0.1:6379/0", "br0ker-pass"} <= secret_values(ctx, env_id=None)
