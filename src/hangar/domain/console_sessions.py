"""Console sign-in: an access key's ID and secret buy a session, kept by an HttpOnly cookie.

Invariants:
- the cookie's value is 32 random bytes; only its SHA-256 is stored;
- a session ends `console_idle_minutes` after its last request (each request slides it) and
  `console_session_hours` after sign-in, and at once when its access key is revoked;
- the CSRF token is an HMAC of the cookie's value, so it needs no storage and dies with the session.
The bootstrap admin key (HANGAR_HOME/admin.key) signs in with the access key ID "admin".
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete

from hangar.context import Context
from hangar.domain.access import ADMIN_PRINCIPAL, Principal, Role, access_key_secret
from hangar.errors import Unauthorized
from hangar.store.console_sessions import ConsoleSessionRow
from hangar.store.models import utcnow

# a request within this many seconds of the last recorded one does not write it again
SLIDE_GRANULARITY = timedelta(seconds=15)
WRONG_KEY = "the access key ID or the secret access key is wrong"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(token: str) -> str:
    """The form token of the session whose cookie is `token`."""
    return hmac.new(token.encode(), b"hangar-console-csrf", hashlib.sha256).hexdigest()


def csrf_matches(token: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(csrf_token(token), given)


def _verify(ctx: Context, *, access_key_id: str, secret: str, admin_key: str) -> Principal:
    if access_key_id == ADMIN_PRINCIPAL:
        if hmac.compare_digest(secret.encode(), admin_key.encode()):
            return Principal(id=ADMIN_PRINCIPAL, role=Role.Admin)
        raise Unauthorized(WRONG_KEY)
    try:
        expected, role = access_key_secret(ctx, access_key_id=access_key_id)
    except Unauthorized:
        raise Unauthorized(WRONG_KEY) from None
    if not hmac.compare_digest(secret.encode(), expected.encode()):
        raise Unauthorized(WRONG_KEY)
    if role == Role.Scrape:
        raise Unauthorized(f"{access_key_id} is a scrape token: it may read /metrics only, not sign in")
    return Principal(id=access_key_id, role=role)


def sign_in(ctx: Context, *, access_key_id: str, secret: str, admin_key: str,
            now: datetime | None = None) -> tuple[str, Principal]:
    """A new session's cookie value and its principal; Unauthorized (one message for an unknown key
    and a wrong secret) otherwise. Expired sessions are swept here."""
    access_key_id, secret = access_key_id.strip(), secret.strip()
    if not access_key_id or not secret:
        raise Unauthorized("enter both the access key ID and the secret access key")
    principal = _verify(ctx, access_key_id=access_key_id, secret=secret, admin_key=admin_key)
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    with ctx.store.session() as session:
        session.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.last_seen_at < now - _idle(ctx)))
        session.add(ConsoleSessionRow(id=_digest(token), principal_id=principal.id, role=principal.role.name,
                                      created_at=now, last_seen_at=now))
    return token, principal


def _idle(ctx: Context) -> timedelta:
    return timedelta(minutes=ctx.settings.console_idle_minutes)


def resume(ctx: Context, *, token: str, now: datetime | None = None) -> Principal | None:
    """The principal of a live session, its expiry slid forward; None when there is no such
    session, it has expired (it is then removed) or its access key was revoked."""
    now = now or utcnow()
    with ctx.store.session() as session:
        row = session.get(ConsoleSessionRow, _digest(token))
        if row is None:
            return None
        ends = min(row.last_seen_at + _idle(ctx), row.created_at + timedelta(hours=ctx.settings.console_session_hours))
        if now >= ends or not _key_live(ctx, row.principal_id):
            session.delete(row)
            return None
        if now - row.last_seen_at >= SLIDE_GRANULARITY:
            row.last_seen_at = now
        return Principal(id=row.principal_id, role=Role[row.role])


def _key_live(ctx: Context, principal_id: str) -> bool:
    if principal_id == ADMIN_PRINCIPAL:
        return True
    try:
        access_key_secret(ctx, access_key_id=principal_id)
    except Unauthorized:
        return False
    return True


def sign_out(ctx: Context, *, token: str) -> None:
    with ctx.store.session() as session:
        session.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.id == _digest(token)))
