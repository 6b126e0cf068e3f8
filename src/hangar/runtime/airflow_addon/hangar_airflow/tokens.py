"""Mint and verify the HS512 JWTs Hangar uses to act on an Airflow environment.

Shared by Hangar's control plane (``mint``) and by the Airflow-side add-on
(``decode``), so it depends on PyJWT and the standard library only.

Invariants:
- Tokens are HS512, signed with the environment's ``[api_auth] jwt_secret``
  (env var ``AIRFLOW__API_AUTH__JWT_SECRET``); audience ``apache-airflow`` for API
  tokens (web/CLI tokens have their own audience, see Purposes below).
- Claims: ``sub`` (username), ``role`` (Airflow 3 SimpleAuthManager role),
  ``aud``, ``iat``, ``nbf``, ``exp``, ``jti``. This is exactly what Airflow 3's
  ``JWTValidator`` + ``SimpleAuthManager.deserialize_user`` accept as a Bearer
  token or ``_token`` cookie, so on Airflow 3 no Airflow code is needed to
  validate them. On Airflow 2 ``role`` is ignored (the FAB user's roles apply).
- ``decode`` raises only ``TokenError``; it never accepts an empty/short secret
  (an empty HMAC key would let anyone forge tokens).

Purposes (single-purpose tokens). Every token carries ``hangar_purpose``:
- ``api``: the default; Bearer token for Airflow's REST API and ``/hangar/login``.
  Audience ``apache-airflow``, so Airflow 3 accepts it natively.
- ``web``: MWAA-style WebToken for ``/aws_mwaa/aws-console-sso``; ``cli``: CliToken for
  ``/aws_mwaa/cli``. Both are meant to be short-lived (minted for 60 s; ``mint`` refuses
  more than ``MAX_SHORT_LIVED_SECONDS``) and use their own audience (``hangar-web`` /
  ``hangar-cli``), so Airflow 3's own JWT validator and the Airflow 2 auth backend reject
  them as API/session tokens: a web token that leaked from a URL/browser history cannot
  be replayed against the REST API, and an API token cannot be used to open a UI session
  through the SSO route or run CLI commands.
- ``decode(..., purpose=p)`` accepts only tokens whose audience *and* ``hangar_purpose``
  are those of ``p``. Tokens minted before purposes existed have no claim and the API
  audience, so they count as ``api``. ``decode`` without ``purpose`` keeps its old
  behaviour (audience ``apache-airflow``, i.e. only API tokens pass).
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

PURPOSE_CLAIM = "hangar_purpose"
PURPOSE_API, PURPOSE_WEB, PURPOSE_CLI = "api", "web", "cli"
PURPOSES = frozenset({PURPOSE_API, PURPOSE_WEB, PURPOSE_CLI})
_PURPOSE_AUDIENCES = {PURPOSE_API: AUDIENCE, PURPOSE_WEB: "hangar-web", PURPOSE_CLI: "hangar-cli"}
# Web/CLI tokens travel in URLs and scripts; they only open a session / run one command.
MAX_SHORT_LIVED_SECONDS = 600


class TokenError(Exception):
    """Any failure to verify a Hangar token (bad signature, expired, malformed...)."""


def _key(secret: str | bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    if len(key) < MIN_SECRET_BYTES:
        raise TokenError(f"JWT secret must be at least {MIN_SECRET_BYTES} bytes")
    return key


def audience_for(purpose: str) -> str:
    """The ``aud`` a token of ``purpose`` carries (and must carry to verify)."""
    try:
        return _PURPOSE_AUDIENCES[purpose]
    except KeyError:
        raise ValueError(f"purpose must be one of {sorted(PURPOSES)}") from None


def mint(
    secret: str | bytes,
    *,
    sub: str,
    role: str,
    valid_for_seconds: int,
    purpose: str = PURPOSE_API,
    audience: str | None = None,
) -> str:
    """Return a signed ``purpose`` token for user ``sub`` with SimpleAuthManager ``role``.

    ``audience`` defaults to the purpose's audience (``apache-airflow`` for ``api``).
    """
    if not sub:
        raise ValueError("sub must be a non-empty username")
    if role not in ROLES:
        raise ValueError(f"role must be one of {sorted(ROLES)}")
    if valid_for_seconds <= 0:
        raise ValueError("valid_for_seconds must be positive")
    default_audience = audience_for(purpose)  # validates purpose
    if purpose != PURPOSE_API and valid_for_seconds > MAX_SHORT_LIVED_SECONDS:
        raise ValueError(f"{purpose} tokens are short-lived: at most {MAX_SHORT_LIVED_SECONDS} seconds")
    now = int(time.time())
    claims = {
        "jti": uuid.uuid4().hex,
        "sub": sub,
        "role": role,
        "aud": audience or default_audience,
        "iat": now,
        "nbf": now,
        "exp": now + int(valid_for_seconds),
        PURPOSE_CLAIM: purpose,
    }
    return jwt.encode(claims, _key(secret), algorithm=ALGORITHM)


def decode(
    token: str,
    secret: str | bytes,
    *,
    purpose: str | None = None,
    audience: str | None = None,
    leeway: int = DEFAULT_LEEWAY_SECONDS,
) -> dict[str, Any]:
    """Verify signature, audience and exp/nbf/iat; return the claims or raise ``TokenError``.

    With ``purpose``, also require ``hangar_purpose == purpose`` (a missing claim counts as
    ``api``) and the purpose's audience. ``audience`` overrides the expected audience.
    """
    if purpose is not None and purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {sorted(PURPOSES)}")
    if not token:
        raise TokenError("missing token")
    expected_audience = audience or (audience_for(purpose) if purpose else AUDIENCE)
    try:
        claims = jwt.decode(
            token,
            _key(secret),
            algorithms=[ALGORITHM],  # pinned: never trust the token's own "alg"
            audience=expected_audience,
            leeway=leeway,
            options={"require": ["exp", "iat", "nbf", "aud", "sub"]},
        )
    except TokenError:
        raise
    except jwt.InvalidAudienceError as exc:
        # Signature and times were fine (PyJWT checks them first): a token of another purpose.
        what = f"a {purpose!r} token" if purpose else f"for audience {expected_audience!r}"
        raise TokenError(f"not {what} (wrong purpose/audience)") from exc
    except Exception as exc:  # PyJWTError, plus odd input types
        raise TokenError(str(exc)) from exc
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise TokenError("sub must be a non-empty string")
    if purpose is not None:
        actual = claims.get(PURPOSE_CLAIM, PURPOSE_API)
        if actual != purpose:
            raise TokenError(f"token purpose is {actual!r}, not {purpose!r}")
    return claims


def secret_from_airflow_config() -> str:
    """The environment's secret as Airflow sees it (only call inside Airflow processes)."""
    from airflow.configuration import conf

    return conf.get("api_auth", "jwt_secret", fallback="") or ""
