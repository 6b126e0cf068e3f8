"""DAGs from git, as the domain sees them: the credential a spec names must exist; a sync is
asked for by the interval, `hangar env sync` or a signed push webhook; what is served (the
commit, when it was fetched, the last error) is read from the sync's own state.

The webhook's secret is one per environment, made (or replaced) by `hangar env git-webhook`,
shown that once, and kept encrypted with the environment's other secrets. GitHub signs a delivery's body with it
(X-Hub-Signature-256: sha256=HMAC); GitLab sends it as X-Gitlab-Token.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from hangar.context import Context
from hangar.domain import git_credentials
from hangar.errors import GitCredentialNotFound, Unauthorized, ValidationFailed
from hangar.runtime import gitsync
from hangar.schemas.git import GitDags
from hangar.schemas.public import GitStatusPublic
from hangar.schemas.spec import Spec
from hangar.store import repository

WEBHOOK_SECRET = "git_webhook_secret"


def check_git(ctx: Context, spec: Spec) -> None:
    """The credential a git source names exists (refused before anything is stored)."""
    if spec.git is None or spec.git.credential is None:
        return
    try:
        git_credentials.require_credential(ctx, name=spec.git.credential)
    except GitCredentialNotFound as exc:
        raise ValidationFailed(f"git.credential: {exc.message}") from None


def source_for(ctx: Context, git: GitDags) -> gitsync.GitSource:
    """The sync's source, its credential opened."""
    credential = None
    if git.credential is not None:
        opened = git_credentials.open_credential(ctx, name=git.credential)
        credential = (gitsync.HttpsToken(token=opened.secret) if opened.kind == "token"
                      else gitsync.SshKey(private_key=opened.secret, known_hosts=opened.known_hosts or ""))
    return gitsync.GitSource(url=git.url, ref=git.ref, subdir=git.subdir, credential=credential)


def git_root(ctx: Context, env_id: str) -> Path:
    return ctx.settings.git_dir / env_id


def status_of(ctx: Context, env_id: str) -> GitStatusPublic:
    state = gitsync.read_state(git_root(ctx, env_id))
    error = state.last_error or {}
    return GitStatusPublic(commit=state.commit, committed_at=state.commit_time, fetched_at=state.fetched_at,
                           last_error=error.get("message"), last_error_code=error.get("code"),
                           last_error_at=error.get("at"))


def new_webhook_secret(ctx: Context, *, name: str) -> str:
    """A new webhook secret for the environment, replacing any earlier one; shown this once."""
    secret = secrets.token_urlsafe(32)
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        repository.put_secret(session, ctx.envelope, env_id=env.id, name=WEBHOOK_SECRET, value=secret)
    return secret


def _webhook_secret(ctx: Context, *, name: str) -> str:
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        stored = repository.get_secrets(session, ctx.envelope, env_id=env.id).get(WEBHOOK_SECRET)
    if stored is None:
        raise Unauthorized(f"{name} has no webhook secret yet (hangar env git-webhook {name} makes one)")
    return stored


def verify_gitlab_token(ctx: Context, *, name: str, token: str) -> None:
    if not hmac.compare_digest(token.encode(), _webhook_secret(ctx, name=name).encode()):
        raise Unauthorized("the X-Gitlab-Token does not match this environment's webhook secret")


def verify_github_signature(ctx: Context, *, name: str, signature: str, body: bytes) -> None:
    expected = "sha256=" + hmac.new(_webhook_secret(ctx, name=name).encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise Unauthorized("the X-Hub-Signature-256 does not match this environment's webhook secret and the body")


def request_sync(ctx: Context, *, name: str, accept_rewritten_history: bool = False) -> str:
    """Ask the git sync loop to sync the environment now (taking a force-pushed ref's new commit
    when `accept_rewritten_history`); its id."""
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        spec = repository.get_spec(session, env.id, env.running_revision or env.revision)
        if spec.git is None:
            raise ValidationFailed(f"{name} takes its DAGs from {'a bucket' if spec.source else 'a folder'}, not git")
        env_id = env.id
    if accept_rewritten_history:
        ctx.git_accept_rewritten.add(env_id)
    ctx.git_wanted.add(env_id)
    ctx.git_wake.set()
    return env_id
