"""Principals, roles and what each role may do; access keys (the audit log: hangar.domain.audit).

Roles are ordered Viewer < User < Op < Admin, as in Airflow:
- Viewer may only read;
- User may also log into environments (web login, CLI and REST API tokens);
- Op may also update environments and their tags;
- Admin may do everything, including create, delete and managing keys.

The caller's role is also the role they get inside an environment's Airflow.
Access key secrets are stored envelope-encrypted (SigV4 needs the secret to
recompute a signature) and are shown exactly once, at creation.
"""
from __future__ import annotations

import hmac
import secrets
import string
import threading
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import NewType

from sqlalchemy import select

from hangar.context import Context
from hangar.errors import AccessDenied, Unauthorized, ValidationFailed
from hangar.schemas.access import AccessKeyCreated, AccessKeyPublic
from hangar.store.models import AccessKeyRow, utcnow

AccessKeyId = NewType("AccessKeyId", str)
ADMIN_PRINCIPAL = "admin"  # the bootstrap key in HANGAR_HOME/admin.key


class Role(IntEnum):
    Scrape = 0  # a scrape token: GET /metrics and nothing else (for Prometheus)
    Viewer = 1
    User = 2
    Op = 3
    Admin = 4

    @classmethod
    def parse(cls, text: str) -> "Role":
        for role in cls:
            if role.name.lower() == text.strip().lower():
                return role
        raise ValidationFailed(f"role {text!r} is not one of Admin, Op, User, Viewer, Scrape")

    @property
    def airflow3(self) -> str:
        """SimpleAuthManager's role names."""
        return self.name.upper()


# the least role each action needs
NEEDS: dict[str, Role] = {
    "metrics": Role.Scrape,
    "read": Role.Viewer,
    "login": Role.User,
    "update": Role.Op,
    "admin": Role.Admin,
}


@dataclass(frozen=True, kw_only=True)
class Principal:
    id: str
    role: Role

    def require(self, action: str) -> None:
        needed = NEEDS[action]
        if self.role < needed:
            raise AccessDenied(
                f"{self.id} has role {self.role.name}; this call needs {needed.name} or higher"
            )


_ID_CHARS = string.ascii_uppercase + string.digits


def create_access_key(ctx: Context, *, role: Role, description: str | None = None) -> AccessKeyCreated:
    key_id = "HKIA" + "".join(secrets.choice(_ID_CHARS) for _ in range(16))
    secret = secrets.token_urlsafe(30)[:40]
    wrapped, ciphertext = ctx.envelope.encrypt(secret, context=f"access-key/{key_id}")
    with ctx.store.session() as session:
        session.add(AccessKeyRow(id=key_id, role=role.name, wrapped_key=wrapped, ciphertext=ciphertext,
                                 description=description, created_at=utcnow()))
    return AccessKeyCreated(access_key_id=key_id, secret_access_key=secret, role=role.name,
                            api_key=f"{key_id}:{secret}")


def list_access_keys(ctx: Context) -> list[AccessKeyPublic]:
    with ctx.store.session() as session:
        rows = session.scalars(select(AccessKeyRow).order_by(AccessKeyRow.created_at))
        return [AccessKeyPublic(access_key_id=r.id, role=r.role, description=r.description, created_at=r.created_at,
                                revoked=r.revoked_at is not None) for r in rows]


def revoke_access_key(ctx: Context, *, access_key_id: str) -> None:
    with ctx.store.session() as session:
        row = session.get(AccessKeyRow, access_key_id)
        if row is None:
            raise ValidationFailed(f"access key {access_key_id} does not exist")
        row.revoked_at = row.revoked_at or utcnow()
    with _SECRETS_LOCK:
        _SECRETS.pop(access_key_id, None)


# Decrypted secrets of recently used keys, so a signed request does not cost a database read and
# a decryption. Revocation goes through this process and evicts the key at once.
_SECRETS: dict[str, tuple[str, Role, float]] = {}
_SECRETS_LOCK = threading.Lock()
SECRET_CACHE_SECONDS = 30.0


def access_key_secret(ctx: Context, *, access_key_id: str) -> tuple[str, Role]:
    """The secret and role of a live access key; Unauthorized if unknown or revoked."""
    now = time.monotonic()
    with _SECRETS_LOCK:
        cached = _SECRETS.get(access_key_id)
    if cached is not None and cached[2] > now:
        return cached[0], cached[1]
    secret, role = _load_secret(ctx, access_key_id=access_key_id)
    with _SECRETS_LOCK:
        _SECRETS[access_key_id] = (secret, role, now + SECRET_CACHE_SECONDS)
    return secret, role


def _load_secret(ctx: Context, *, access_key_id: str) -> tuple[str, Role]:
    with ctx.store.session() as session:
        row = session.get(AccessKeyRow, access_key_id)
        if row is None or row.revoked_at is not None:
            raise Unauthorized(f"the access key {access_key_id!r} is not valid")
        secret = ctx.envelope.decrypt(row.wrapped_key, row.ciphertext, context=f"access-key/{row.id}")
        return secret, Role[row.role]


def authenticate_bearer(ctx: Context, *, token: str, admin_key: str) -> Principal:
    if hmac.compare_digest(token.encode(), admin_key.encode()):
        return Principal(id=ADMIN_PRINCIPAL, role=Role.Admin)
    key_id, _, secret = token.partition(":")
    if not key_id or not secret:
        raise Unauthorized("a valid API key is required (Authorization: Bearer <key>)")
    expected, role = access_key_secret(ctx, access_key_id=key_id)
    if not hmac.compare_digest(secret.encode(), expected.encode()):
        raise Unauthorized(f"the access key {key_id!r} is not valid")
    return Principal(id=key_id, role=role)
