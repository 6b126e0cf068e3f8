"""KMS-like keys that wrap environment secrets (MWAA's KmsKey, inside Hangar).

A key has an id in AWS key-id form (a UUID), an optional alias `alias/NAME`, and
versions of 256-bit material, each sealed under the master key in HANGAR_HOME
(hangar.crypto). An environment's secret data keys are wrapped under the current
version of one key: the Hangar-managed default (`alias/hangar/default`, created on
first start) or the customer-managed key its spec names in `kms_key`, given as an
id, an alias, or an ARN of either.

Invariants:
- key material is never returned, printed or logged; only ids, aliases and counts are;
- rotation adds a version and re-wraps every data key under the key's older versions
  in the same transaction; ciphertexts and plaintexts do not change, so nothing restarts;
- versions are never deleted: superseded ones are marked and stay readable.
"""
from __future__ import annotations

import re
from typing import NewType

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hangar.context import Context
from hangar.crypto import Envelope
from hangar.errors import ValidationFailed
from hangar.schemas.keys import KeyPublic, KeyRotated
from hangar.store import repository
from hangar.store.models import KmsKeyRow, utcnow

KeyId = NewType("KeyId", str)

DEFAULT_ALIAS = repository.DEFAULT_KMS_KEY_ALIAS
RESERVED_ALIAS_PREFIXES = ("alias/aws/", "alias/hangar/")
# ARNs Hangar prints use the region and account of its MWAA API (hangar.api.mwaa.shapes)
ARN_REGION = "local"
ARN_ACCOUNT = "000000000000"

_KEY_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_ALIAS = re.compile(r"^alias/[a-zA-Z0-9/_-]{1,250}$")
_ARN = re.compile(r"^arn:aws(-[a-z]+)?:kms:[a-z0-9-]+:\d+:(?P<resource>(key|alias)/.+)$")


class KmsKeyNotFound(ValidationFailed):
    code = "KMS_KEY_NOT_FOUND"

    def __init__(self, ref: str) -> None:
        super().__init__(f"KMS key {ref!r} does not exist; `hangar key list` shows the keys there are")
        self.ref = ref


class KmsAliasExists(ValidationFailed):
    code = "KMS_ALIAS_EXISTS"

    def __init__(self, alias: str) -> None:
        super().__init__(f"alias {alias!r} already names a key")
        self.alias = alias


def arn(key_id: str) -> str:
    return f"arn:aws:kms:{ARN_REGION}:{ARN_ACCOUNT}:key/{key_id}"


def parse_ref(ref: str) -> tuple[str, str]:
    """("id", key id) or ("alias", alias/NAME) from an id, an alias, or an ARN of either."""
    text = ref.strip()
    match = _ARN.match(text)
    if match:
        text = match["resource"]
    if text.startswith("key/"):
        text = text.removeprefix("key/")
        if not _KEY_ID.match(text.lower()):
            raise ValidationFailed(f"KMS key {ref!r}: {text!r} is not a key id like 1234abcd-12ab-34cd-56ef-1234567890ab")
    if text.startswith("alias/"):
        return "alias", text
    if _KEY_ID.match(text.lower()):
        return "id", text.lower()
    raise ValidationFailed(f"KMS key {ref!r} is not a key id, an alias/NAME, or an ARN of either")


def resolve(session: Session, envelope: Envelope, ref: str | None) -> KmsKeyRow:
    """The key `ref` names; None names the default key (made if it does not exist yet)."""
    if ref is None:
        return repository.default_kms_key(session, envelope)
    kind, value = parse_ref(ref)
    row = repository.get_kms_key(session, value) if kind == "id" else repository.find_kms_key_by_alias(session, value)
    if row is None:
        raise KmsKeyNotFound(ref)
    return row


def key_id_for(ctx: Context, *, ref: str | None) -> KeyId:
    """Check an environment's `kms_key` and return the id it resolves to."""
    with ctx.store.session() as session:
        return KeyId(resolve(session, ctx.envelope, ref).id)


def ensure_default_key(ctx: Context) -> KeyPublic:
    try:
        with ctx.store.session() as session:
            return _public(session, repository.default_kms_key(session, ctx.envelope))
    except IntegrityError:  # made at the same moment by another caller: use that one
        with ctx.store.session() as session:
            return _public(session, repository.default_kms_key(session, ctx.envelope))


def create_key(ctx: Context, *, alias: str | None = None, description: str | None = None) -> KeyPublic:
    if alias is not None:
        if not _ALIAS.match(alias):
            raise ValidationFailed(f"alias {alias!r} must look like alias/NAME (letters, digits, / _ -)")
        if alias.startswith(RESERVED_ALIAS_PREFIXES):
            raise ValidationFailed(f"alias {alias!r} is reserved: aliases under alias/aws/ and alias/hangar/ are not for customer keys")
    try:
        with ctx.store.session() as session:
            if alias is not None and repository.find_kms_key_by_alias(session, alias) is not None:
                raise KmsAliasExists(alias)
            row = repository.add_kms_key(session, ctx.envelope, key_id=repository.new_id(), alias=alias,
                                         description=description)
            return _public(session, row)
    except IntegrityError:
        raise KmsAliasExists(alias or "") from None


def list_keys(ctx: Context) -> list[KeyPublic]:
    with ctx.store.session() as session:
        return [_public(session, row) for row in repository.list_kms_keys(session)]


def get_key(ctx: Context, *, key: str) -> KeyPublic:
    with ctx.store.session() as session:
        return _public(session, resolve(session, ctx.envelope, key))


def rotate_key(ctx: Context, *, key: str) -> KeyRotated:
    """A new current version; every data key under an older one is re-wrapped with it, in one transaction."""
    with ctx.store.session() as session:
        row = resolve(session, ctx.envelope, key)
        now = utcnow()
        for version in repository.kms_key_versions(session, row.id):
            version.superseded_at = version.superseded_at or now
        row.current_version += 1
        repository.add_kms_key_version(session, ctx.envelope, key_id=row.id, version=row.current_version)
        row.rotated_at = now
        rewrapped = repository.rewrap_secrets(session, ctx.envelope, kms_key_id=row.id)
        return KeyRotated(**_public(session, row).model_dump(), rewrapped=rewrapped)


def _public(session: Session, row: KmsKeyRow) -> KeyPublic:
    return KeyPublic(
        key_id=row.id, arn=arn(row.id), alias=row.alias, description=row.description,
        key_manager="HANGAR" if row.managed else "CUSTOMER", current_version=row.current_version,
        versions=len(repository.kms_key_versions(session, row.id)), created_at=row.created_at, rotated_at=row.rotated_at,
    )
