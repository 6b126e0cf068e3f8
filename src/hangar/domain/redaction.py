"""Known secret values are cut out of failure texts before they are stored.

A failed pre-flight or startup script reports the output of the environment's own code,
and that code sees the environment's secrets (and, without isolation, may read the control
plane's). Every secret value Hangar knows is replaced by "[redacted]" in such a text:
- the environment's own secrets (Fernet key, passwords, database URL, broker URL);
- the control plane's: the admin key, the master key (raw, base64 and hex), every live
  access key's secret, the broker URL and the passwords inside any URL among them.
What cannot be recognised (a secret re-encoded some other way) is not caught: the texts are
also shown only to roles that may change those inputs (hangar.domain.disclosure).
"""
from __future__ import annotations

import base64
import logging
from urllib.parse import unquote, urlsplit

from sqlalchemy import select

from hangar.context import Context
from hangar.store import repository
from hangar.store.models import AccessKeyRow

log = logging.getLogger(__name__)
REDACTED = "[redacted]"
MIN_LENGTH = 6  # shorter values (a port, "admin") would blank out ordinary words


def secret_values(ctx: Context, *, env_id: str | None) -> set[str]:
    values: set[str] = set()
    settings = ctx.settings
    if settings.api_key_file.exists():
        values.add(settings.api_key_file.read_text().strip())
    if settings.master_key_file.exists():
        raw = settings.master_key_file.read_bytes()
        values |= {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode(), raw.hex(),
                   raw.decode("latin-1")}
    if settings.celery_broker_url:
        values.add(settings.celery_broker_url)
    with ctx.store.session() as session:
        if env_id is not None:
            values |= set(repository.get_secrets(session, ctx.envelope, env_id=env_id).values())
        for row in session.scalars(select(AccessKeyRow).where(AccessKeyRow.revoked_at.is_(None))):
            values.add(ctx.envelope.decrypt(row.wrapped_key, row.ciphertext, context=f"access-key/{row.id}"))
    for value in list(values):
        values |= _url_password(value)
    return {value for value in values if len(value) >= MIN_LENGTH}


def redact(text: str, values: set[str]) -> str:
    for value in sorted(values, key=len, reverse=True):  # a longer secret may contain a shorter one
        text = text.replace(value, REDACTED)
    return text


def redact_failure(ctx: Context, *, env_id: str | None, text: str) -> str:
    """`text` with every known secret value cut out; if they cannot all be gathered, the text is
    withheld rather than stored as it is."""
    try:
        return redact(text, secret_values(ctx, env_id=env_id))
    except Exception:
        log.exception("could not gather the secret values to redact a failure text; withholding it")
        return (text.splitlines() or [""])[0][:200] + " (the rest is withheld: it could not be checked for secrets)"


def _url_password(value: str) -> set[str]:
    if "://" not in value:
        return set()
    try:
        password = urlsplit(value).password
    except ValueError:
        return set()
    return {password, unquote(password)} if password else set()
