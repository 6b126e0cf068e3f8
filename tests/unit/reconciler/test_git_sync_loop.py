"""The git sync loop and the git routes against a real git server on loopback (git http-backend
behind a token), with a real store: an environment follows its branch on the interval and when
asked; a failing sync keeps the last good commit and is recorded once as an event; the webhook
takes GitHub's signature or GitLab's token and nothing else; `env get` shows what is served."""
from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hangar.api import admission, audit
from hangar.api import errors as api_errors
from hangar.api.routes import environments as environment_routes
from hangar.api.routes import git as git_routes
from hangar.api.routes import git_dags as git_dag_routes
from hangar.context import Context
from hangar.domain import environments, git_credentials, git_dags, queries
from hangar.domain.status import Status
from hangar.reconciler.loops.git_sync import GitSyncer
from hangar.schemas.git import GitDags
from hangar.schemas.git_credentials import GitCredentialCreate
from hangar.schemas.spec import EnvironmentCreate
from hangar.store import repository
from tests.e2e.gitserver import GitServer

TOKEN = "gtk_unit_token_0123456789"
ADMIN_KEY = "hgr_test-admin-key"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def server(tmp_path: Path):
    with GitServer(root=tmp_path / "served", token=TOKEN) as running:
        yield running


@pytest.fixture
def repo(server):
    clone = server.create_repo("dags")
    first = clone.commit({"dag_a.py": "# a\n"}, "first")
    clone.push()
    return clone, first


def running_env(ctx: Context, server: GitServer, *, name: str = "gitenv", credential: str | None = "tok") -> str:
    if credential and credential not in [c.name for c in git_credentials.list_credentials(ctx)]:
        git_credentials.create_credential(ctx, request=GitCredentialCreate(name=credential, token=TOKEN))
    environments.create_environment(ctx, request=EnvironmentCreate(
        name=name, git=GitDags(url=server.url("dags"), credential=credential, sync_interval=30)))
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        env.status, env.running_revision, env.last_good_revision = Status.AVAILABLE, 1, 1
        repository.close_operations(session, env.id, step="done")
        return env.id


def served(ctx: Context, env_id: str) -> str:
    return (git_dags.git_root(ctx, env_id) / "current").resolve().name


def test_an_environment_follows_its_branch_on_the_interval_and_when_asked(ctx, server, repo):
    clone, first = repo
    env_id = running_env(ctx, server)
    clock = Clock()
    syncer = GitSyncer(ctx, now=clock)
    syncer.run_once()
    assert served(ctx, env_id).startswith(first)
    second = clone.commit({"dag_b.py": "# b\n"}, "second")
    clone.push()
    clock.now += timedelta(seconds=5)
    syncer.run_once()  # not due yet
    assert served(ctx, env_id).startswith(first)
    git_dags.request_sync(ctx, name="gitenv")  # what `hangar env sync` and the webhook do
    syncer.run_once()
    assert served(ctx, env_id).startswith(second)
    assert (git_dags.git_root(ctx, env_id) / "current" / "dag_b.py").exists()
    status = queries.get_environment(ctx, name="gitenv").git
    assert status.commit == second and status.last_error is None and status.fetched_at


def test_a_failing_sync_keeps_the_last_good_commit_and_is_recorded_once(ctx, server, repo):
    clone, _ = repo
    good = clone.commit({"dag_b.py": "# b\n"}, "second")
    clone.push()
    env_id = running_env(ctx, server)
    clock = Clock()
    syncer = GitSyncer(ctx, now=clock)
    syncer.run_once()
    clone.force_push(to="HEAD~1", files={"dag_a.py": "# rewritten\n"})
    for _ in range(2):
        clock.now += timedelta(seconds=31)
        syncer.run_once()
    assert served(ctx, env_id).startswith(good)
    status = queries.get_environment(ctx, name="gitenv").git
    assert status.commit == good and "rewr" in (status.last_error or "").lower(), status
    reasons = [e.reason for e in queries.list_events(ctx, name="gitenv") if "git sync failed" in e.reason]
    assert len(reasons) == 1 and f"still serving {good[:12]}" in reasons[0]
    assert TOKEN not in str(status)


def test_a_force_pushed_commit_is_taken_only_when_a_sync_is_told_to(ctx, server, repo):
    clone, _ = repo
    clone.commit({"dag_b.py": "# b\n"}, "second")
    clone.push()
    env_id = running_env(ctx, server)
    syncer = GitSyncer(ctx, now=Clock())
    syncer.run_once()
    rewritten = clone.force_push(to="HEAD~1", files={"dag_c.py": "# c\n"})
    git_dags.request_sync(ctx, name="gitenv")
    syncer.run_once()
    assert not served(ctx, env_id).startswith(rewritten)
    assert "--accept-rewritten-history" in queries.get_environment(ctx, name="gitenv").git.last_error
    git_dags.request_sync(ctx, name="gitenv", accept_rewritten_history=True)
    syncer.run_once()
    assert served(ctx, env_id).startswith(rewritten) and not ctx.git_accept_rewritten
    assert any("git sync recovered" in e.reason for e in queries.list_events(ctx, name="gitenv"))


def test_a_wrong_token_is_named_and_never_shown(ctx, server, repo):
    git_credentials.create_credential(ctx, request=GitCredentialCreate(name="wrong", token="not-the-token"))
    env_id = running_env(ctx, server, credential="wrong")
    GitSyncer(ctx, now=Clock()).run_once()
    status = queries.get_environment(ctx, name="gitenv").git
    assert status.commit is None and status.last_error_code == "GIT_AUTH_FAILED", status
    assert "not-the-token" not in status.last_error
    assert not (git_dags.git_root(ctx, env_id) / "current").exists()


def test_an_unknown_credential_is_refused_before_anything_is_stored(ctx, server):
    with pytest.raises(Exception) as refused:
        environments.create_environment(ctx, request=EnvironmentCreate(
            name="nocred", git=GitDags(url=server.url("dags"), credential="missing")))
    assert "git credential 'missing' does not exist" in str(refused.value)
    assert queries.list_environments(ctx) == []


def test_a_used_credential_cannot_be_deleted(ctx, server, repo):
    running_env(ctx, server)
    with pytest.raises(Exception) as refused:
        git_credentials.delete_credential(ctx, name="tok")
    assert "used by gitenv" in str(refused.value)


@pytest.fixture
def client(ctx: Context) -> TestClient:
    app = FastAPI()
    api_errors.install(app)
    admission.install(app)
    audit.install(app)
    for router in (environment_routes.router, git_routes.router, git_dag_routes.router, git_dag_routes.hooks):
        app.include_router(router)
    app.state.ctx, app.state.admin_key = ctx, ADMIN_KEY
    with TestClient(app) as test_client:
        yield test_client


def test_the_webhook_takes_a_github_signature_or_a_gitlab_token_and_nothing_else(ctx, server, repo, client):
    running_env(ctx, server)
    hook = "/api/v1/environments/gitenv/git-webhook"
    body = b'{"ref": "refs/heads/main"}'
    assert client.post(hook, content=body).status_code == 401  # no signature: refused before the body
    assert not ctx.git_wanted
    no_secret = client.post(hook, content=body, headers={"X-Gitlab-Token": "x"})
    assert no_secret.status_code == 401 and "no webhook secret yet" in no_secret.text
    made = client.post("/api/v1/environments/gitenv/git-webhook-secret",
                       headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert made.status_code == 200 and made.json()["url"].endswith(hook)
    secret = made.json()["secret"]
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    bad = client.post(hook, content=body, headers={"X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert bad.status_code == 401 and "does not match" in bad.text
    tampered = client.post(hook, content=body + b" ", headers={"X-Hub-Signature-256": signature})
    assert tampered.status_code == 401
    assert client.post(hook, content=body, headers={"X-Gitlab-Token": "wrong"}).status_code == 401
    assert not ctx.git_wanted
    assert client.post(hook, content=body, headers={"X-Hub-Signature-256": signature}).status_code == 202
    assert ctx.git_wanted == {queries_env_id(ctx)}
    ctx.git_wanted.clear()
    assert client.post(hook, content=body, headers={"X-Gitlab-Token": secret}).status_code == 202
    assert ctx.git_wanted == {queries_env_id(ctx)}
    again = client.post("/api/v1/environments/gitenv/git-webhook-secret", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert client.post(hook, content=body, headers={"X-Gitlab-Token": secret}).status_code == 401  # replaced
    assert again.json()["secret"] != secret


def queries_env_id(ctx: Context) -> str:
    with ctx.store.session() as session:
        return repository.get_live(session, "gitenv").id


def test_sync_needs_op_and_a_git_source(ctx, server, repo, client, tmp_path):
    running_env(ctx, server)
    assert client.post("/api/v1/environments/gitenv/sync").status_code == 401
    done = client.post("/api/v1/environments/gitenv/sync", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert done.status_code == 202 and ctx.git_wanted
    folder = tmp_path / "plain"
    folder.mkdir()
    environments.create_environment(ctx, request=EnvironmentCreate(name="plain", dags=str(folder)))
    with ctx.store.session() as session:
        env = repository.get_live(session, "plain")
        env.running_revision = 1
    refused = client.post("/api/v1/environments/plain/sync", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert refused.status_code == 400 and "not git" in refused.text
