"""Git credentials: created once (the secret is never shown again), listed without their secrets,
deleted only when no environment names them, and opened only for a sync."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from hangar.context import Context
from hangar.errors import GitCredentialExists, GitCredentialNotFound, ValidationFailed
from hangar.schemas.git_credentials import GitCredentialCreate, GitCredentialPublic
from hangar.store import repository
from hangar.store.git_credentials import GitCredentialRow
from hangar.store.models import utcnow


@dataclass(frozen=True, repr=False)
class GitSecret:
    """A credential opened for one sync; its repr shows no secret."""

    kind: str
    secret: str
    known_hosts: str | None

    def __repr__(self) -> str:
        return f"GitSecret(kind={self.kind!r})"


def _context(name: str) -> str:
    return f"git-credential/{name}"


def _hosts(known_hosts: str | None) -> list[str]:
    return sorted({line.split()[0] for line in (known_hosts or "").splitlines() if line.strip() and not line.startswith("#")})


def _public(row: GitCredentialRow) -> GitCredentialPublic:
    return GitCredentialPublic(name=row.name, kind=row.kind, created_at=row.created_at, hosts=_hosts(row.known_hosts))


def create_credential(ctx: Context, *, request: GitCredentialCreate) -> GitCredentialPublic:
    kind = "token" if request.token is not None else "ssh"
    secret = (request.token or request.ssh_key).get_secret_value()
    secret = secret.strip() if kind == "token" else secret.strip() + "\n"
    wrapped, ciphertext = ctx.envelope.encrypt(secret, context=_context(request.name))
    with ctx.store.session() as session:
        if session.get(GitCredentialRow, request.name) is not None:
            raise GitCredentialExists(request.name)
        row = GitCredentialRow(name=request.name, kind=kind, secret_key=wrapped, secret=ciphertext,
                               known_hosts=request.known_hosts if kind == "ssh" else None, created_at=utcnow())
        session.add(row)
        return _public(row)


def list_credentials(ctx: Context) -> list[GitCredentialPublic]:
    with ctx.store.session() as session:
        return [_public(row) for row in session.scalars(select(GitCredentialRow).order_by(GitCredentialRow.name))]


def users_of(ctx: Context, *, name: str) -> list[str]:
    """The live environments whose newest or running spec names the credential."""
    users = []
    with ctx.store.session() as session:
        for env in repository.list_live(session):
            revisions = {env.revision, env.running_revision} - {None}
            if any((spec := repository.get_spec(session, env.id, r)).git is not None and spec.git.credential == name
                   for r in revisions):
                users.append(env.name)
    return users


def delete_credential(ctx: Context, *, name: str) -> None:
    users = users_of(ctx, name=name)
    if users:
        raise ValidationFailed(f"git credential {name!r} is used by {', '.join(users)}; point them elsewhere first")
    with ctx.store.session() as session:
        row = session.get(GitCredentialRow, name)
        if row is None:
            raise GitCredentialNotFound(name)
        session.delete(row)


def require_credential(ctx: Context, *, name: str) -> None:
    with ctx.store.session() as session:
        if session.get(GitCredentialRow, name) is None:
            raise GitCredentialNotFound(name)


def open_credential(ctx: Context, *, name: str) -> GitSecret:
    with ctx.store.session() as session:
        row = session.get(GitCredentialRow, name)
        if row is None:
            raise GitCredentialNotFound(name)
        secret = ctx.envelope.decrypt(row.secret_key, row.secret, context=_context(row.name))
        return GitSecret(kind=row.kind, secret=secret, known_hosts=row.known_hosts)
