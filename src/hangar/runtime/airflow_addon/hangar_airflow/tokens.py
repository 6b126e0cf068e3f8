"""Mint and verify the HS512 JWTs Hangar uses to act on an Airflow environment.

Shared by Hangar's control plane (``mint``) and by the Airflow-side add-on
(``decode``), so it depends on PyJWT and the standard library only.

Invariants:
- Tokens are HS512, signed with the environment's ``[api_auth] jwt_secret``
  (env var ``AIRFLOW__API_AUTH__JWT_SECRET``); audience ``apache-airflow``.
- Claims: ``sub`` (username), ``role`` (Airflow 3 SimpleAuthManager role),
  ``aud``, ``iat``, ``nbf``, ``exp``, ``jti``. This is exactly what Airflow 3's
  ``JWTValidator`` + ``SimpleAuthManager.deserialize_user`` accept as a Bearer
  token or ``_token`` cookie, so on Airflow 3 no Airflow code is needed to
  validate them. On Airflow 2 ``role`` is ignored (the FAB user's roles apply).
- ``decode`` raises only ``TokenError``; it never accepts an empty/short secret
  (an empty HMAC key would let anyone forge tokens).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

ALGORITHM = "HS512"
AUDIENCE = "apache-airflow"
ROLES = frozenset({"ADMIN", "OP", "USER", "VIEWER"})
# HS512 digest size; shorter keys make PyJWT warn (RFC 7518 3.2) inside Airflow too.
MIN_SECRET_BYTES = 64
# Same default as Airflow 3's [api_auth] jwt_leeway.
DEFAULT_LEEWAY_SECONDS = 10


class TokenError(Exception):
    """Any failure to verify a Hangar token (bad signature, expired, malformed...)."""


def _key(secret: str | bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    if len(key) < MIN_SECRET_BYTES:
        raise TokenError(f"JWT secret must be at least {MIN_SECRET_BYTES} bytes")
    return key


def mint(
    secret: str | bytes,
    *,
    sub: str,
    role: str,
    valid_for_seconds: int,
    audience: str = AUDIENCE,
) -> str:
    """Return a signed token for user ``sub`` with SimpleAuthManager ``role``."""
    if not sub:
        raise ValueError("sub must be a non-empty username")
    if role not in ROLES:
        raise ValueError(f"role must be one of {sorted(ROLES)}")
    if valid_for_seconds <= 0:
        raise ValueError("valid_for_seconds must be positive")
    now = int(time.time())
    claims = {
        "jti": uuid.uuid4().hex,
        "sub": sub,
        "role": role,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + int(valid_for_seconds),
    }
    return jwt.encode(claims, _key(secret), algorithm=ALGORITHM)


def decode(
    token: str,
    secret: str | bytes,
    *,
    audience: str = AUDIENCE,
    leeway: int = DEFAULT_LEEWAY_SECONDS,
) -> dict[str, Any]:
    """Verify signature, audience and exp/nbf/iat; return the claims or raise ``TokenError``."""
    if not token:
        raise TokenError("missing token")
    try:
        claims = jwt.decode(
            token,
            _key(secret),
            algorithms=[ALGORITHM],  # pinned: never trust the token's own "alg"
            audience=audience,
            leeway=leeway,
            options={"require": ["exp", "iat", "nbf", "aud", "sub"]},
        )
    except TokenError:
        raise
    except Exception as exc:  # PyJWTError, plus odd input types
        raise TokenError(str(exc)) from exc
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise TokenError("sub must be a non-empty string")
    return claims


def secret_from_airflow_config() -> str:
    """The environment's secret as Airflow sees it (only call inside Airflow processes)."""
    from airflow.configuration import conf

    return conf.get("api_auth", "jwt_secret", fallback="") or ""
