"""Queries over the control plane's tables. No business rules live here."""
from __future__ import annotations

import uuid

from cryptography.exceptions import InvalidTag
from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hangar.crypto import Envelope, new_key_material
from hangar.schemas.operations import OperationKind, Outcome, StepRecord
from hangar.schemas.spec import Spec
from hangar.errors import EnvironmentAlreadyExists, EnvironmentNotFound, OperationInProgress, PermanentError
from hangar.store.models import (
    EnvironmentRow, EventRow, KmsKeyRow, KmsKeyVersionRow, OperationRow, RevisionRow, SecretRow, utcnow,
)

DEFAULT_KMS_KEY_ALIAS = "alias/hangar/default"


class SecretUnreadable(PermanentError):
    """A wrapped data key, a ciphertext or a key version's material does not open: altered, or moved."""

    code = "SECRET_UNREADABLE"


def new_id() -> str:
    return str(uuid.uuid4())


def find_live(session: Session, name: str) -> EnvironmentRow | None:
    return session.scalar(select(EnvironmentRow).where(EnvironmentRow.name == name, EnvironmentRow.status != "DELETED"))


def get_live(session: Session, name: str) -> EnvironmentRow:
    row = find_live(session, name)
    if row is None:
        raise EnvironmentNotFound(name)
    return row


def add_environment(session: Session, env: EnvironmentRow) -> None:
    """Insert a new environment; its name must be free among live ones (a unique index holds
    that even when two creates of one name pass their checks at the same moment)."""
    session.add(env)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        if "environments.name" in str(exc.orig):
            raise EnvironmentAlreadyExists(env.name) from None
        raise


def get_by_id(session: Session, env_id: str) -> EnvironmentRow:
    return session.get_one(EnvironmentRow, env_id)


def list_live(session: Session) -> list[EnvironmentRow]:
    return list(session.scalars(select(EnvironmentRow).where(EnvironmentRow.status != "DELETED").order_by(EnvironmentRow.name)))


def add_revision(session: Session, env: EnvironmentRow, spec: Spec, number: int) -> RevisionRow:
    row = RevisionRow(environment_id=env.id, number=number, spec=spec.model_dump(mode="json"), created_at=utcnow())
    session.add(row)
    return row


def get_spec(session: Session, env_id: str, number: int) -> Spec:
    row = session.get_one(RevisionRow, (env_id, number))
    return Spec.model_validate(row.spec)


def list_revisions(session: Session, env_id: str) -> list[RevisionRow]:
    return list(session.scalars(select(RevisionRow).where(RevisionRow.environment_id == env_id).order_by(RevisionRow.number)))


def add_event(session: Session, env: EnvironmentRow, *, previous: str | None, status: str, reason: str) -> None:
    session.add(EventRow(environment_id=env.id, previous=previous, status=status, reason=reason, at=utcnow()))


def list_events(session: Session, env_id: str, *, newest: int | None = None) -> list[EventRow]:
    """The environment's events, oldest first; only the `newest` ones when given."""
    query = select(EventRow).where(EventRow.environment_id == env_id).order_by(EventRow.id.desc()).limit(newest)
    return list(reversed(session.scalars(query).all()))


def used_ports(session: Session) -> set[int]:
    ports: set[int] = set()
    for row in list_live(session):
        ports.update(int(p) for p in (row.ports or {}).values())
    return ports


# --- secrets: data keys wrapped under a KMS key version (or, for rows older than KMS keys, the master key) ---


def put_secret(
    session: Session, envelope: Envelope, *, env_id: str, name: str, value: str, kms_key_id: str | None = None
) -> None:
    """Write a secret under the current version of `kms_key_id`.

    None means the key the environment's other secrets are under, else the default key.
    The environment's other rows are brought under the same key version, so rows from
    before KMS keys (under the master key) are re-wrapped on the next write."""
    if kms_key_id is None:
        kms_key_id = session.scalar(
            select(SecretRow.kms_key_id).where(SecretRow.environment_id == env_id, SecretRow.kms_key_id.is_not(None)).limit(1)
        ) or default_kms_key(session, envelope).id
    key = session.get_one(KmsKeyRow, kms_key_id)
    material = kms_material(session, envelope, key_id=key.id, version=key.current_version)
    wrapped, ciphertext = envelope.encrypt(value, context=f"{env_id}/{name}", key=material)
    row = session.get(SecretRow, (env_id, name))
    if row is None:
        session.add(SecretRow(environment_id=env_id, name=name, wrapped_key=wrapped, ciphertext=ciphertext,
                              kms_key_id=key.id, kms_key_version=key.current_version))
    else:
        row.wrapped_key, row.ciphertext = wrapped, ciphertext
        row.kms_key_id, row.kms_key_version = key.id, key.current_version
    session.flush()
    rewrap_secrets(session, envelope, kms_key_id=key.id, env_id=env_id)


def get_secrets(session: Session, envelope: Envelope, *, env_id: str) -> dict[str, str]:
    rows = session.scalars(select(SecretRow).where(SecretRow.environment_id == env_id))
    materials: dict[tuple[str, int], bytes] = {}
    result = {}
    for row in rows:
        key = _row_key(session, envelope, row, materials)
        try:
            result[row.name] = envelope.decrypt(row.wrapped_key, row.ciphertext, context=f"{env_id}/{row.name}", key=key)
        except InvalidTag:
            raise _unreadable(row) from None
    return result


def delete_secret(session: Session, *, env_id: str, name: str) -> None:
    session.execute(delete(SecretRow).where(SecretRow.environment_id == env_id, SecretRow.name == name))


def rewrap_secrets(session: Session, envelope: Envelope, *, kms_key_id: str, env_id: str | None = None) -> int:
    """Re-wrap data keys under the current version of `kms_key_id`; ciphertexts are not touched.

    With `env_id`: every secret of that environment not yet under it (any key, or the
    master key). Without: every secret under an older version of that key. Returns how
    many data keys were re-wrapped."""
    key = session.get_one(KmsKeyRow, kms_key_id)
    current = (key.id, key.current_version)
    if env_id is not None:
        query = select(SecretRow).where(SecretRow.environment_id == env_id, or_(
            SecretRow.kms_key_id.is_(None), SecretRow.kms_key_id != key.id, SecretRow.kms_key_version != key.current_version))
    else:
        query = select(SecretRow).where(SecretRow.kms_key_id == key.id, SecretRow.kms_key_version < key.current_version)
    materials: dict[tuple[str, int], bytes] = {}
    new = kms_material(session, envelope, key_id=key.id, version=key.current_version)
    count = 0
    for row in session.scalars(query):
        old = _row_key(session, envelope, row, materials)
        try:
            row.wrapped_key = envelope.rewrap(row.wrapped_key, context=f"{row.environment_id}/{row.name}", old=old, new=new)
        except InvalidTag:
            raise _unreadable(row) from None
        row.kms_key_id, row.kms_key_version = current
        count += 1
    return count


def _row_key(session: Session, envelope: Envelope, row: SecretRow, cache: dict[tuple[str, int], bytes]) -> bytes | None:
    if row.kms_key_id is None:
        return None  # written before KMS keys: the master key wraps it
    where = (row.kms_key_id, row.kms_key_version)
    if where not in cache:
        cache[where] = kms_material(session, envelope, key_id=row.kms_key_id, version=row.kms_key_version)
    return cache[where]


def _unreadable(row: SecretRow) -> SecretUnreadable:
    under = f"KMS key {row.kms_key_id} version {row.kms_key_version}" if row.kms_key_id else "the master key"
    return SecretUnreadable(
        f"secret {row.name} of environment {row.environment_id} cannot be decrypted under {under}: "
        "its wrapped data key, its ciphertext or the key material was altered"
    )


# --- KMS keys ---


def _material_context(key_id: str, version: int) -> str:
    return f"kms-key/{key_id}/{version}"


def add_kms_key(
    session: Session, envelope: Envelope, *, key_id: str, alias: str | None, description: str | None, managed: bool = False
) -> KmsKeyRow:
    row = KmsKeyRow(id=key_id, alias=alias, description=description, managed=managed, current_version=1,
                    created_at=utcnow())
    session.add(row)
    session.flush()
    add_kms_key_version(session, envelope, key_id=key_id, version=1)
    return row


def add_kms_key_version(session: Session, envelope: Envelope, *, key_id: str, version: int) -> None:
    """New material for `version`, sealed under the master key; the plaintext material leaves no trace."""
    sealed = envelope.wrap_material(new_key_material(), context=_material_context(key_id, version))
    session.add(KmsKeyVersionRow(key_id=key_id, version=version, wrapped_material=sealed, created_at=utcnow()))
    session.flush()


def kms_material(session: Session, envelope: Envelope, *, key_id: str, version: int) -> bytes:
    row = session.get_one(KmsKeyVersionRow, (key_id, version))
    try:
        return envelope.unwrap_material(row.wrapped_material, context=_material_context(key_id, version))
    except InvalidTag:
        raise SecretUnreadable(
            f"the material of KMS key {key_id} version {version} cannot be unwrapped under the master key: "
            "it was altered, or the master key is not the one it was sealed with"
        ) from None


def get_kms_key(session: Session, key_id: str) -> KmsKeyRow | None:
    return session.get(KmsKeyRow, key_id)


def find_kms_key_by_alias(session: Session, alias: str) -> KmsKeyRow | None:
    return session.scalar(select(KmsKeyRow).where(KmsKeyRow.alias == alias))


def list_kms_keys(session: Session) -> list[KmsKeyRow]:
    return list(session.scalars(select(KmsKeyRow).order_by(KmsKeyRow.created_at, KmsKeyRow.id)))


def kms_key_versions(session: Session, key_id: str) -> list[KmsKeyVersionRow]:
    return list(session.scalars(select(KmsKeyVersionRow).where(KmsKeyVersionRow.key_id == key_id)
                                .order_by(KmsKeyVersionRow.version)))


def secrets_under_kms_key(session: Session, key_id: str) -> dict[int, int]:
    """How many data keys each version of the key wraps."""
    rows = session.execute(select(SecretRow.kms_key_version, func.count()).where(SecretRow.kms_key_id == key_id)
                           .group_by(SecretRow.kms_key_version))
    return {version: count for version, count in rows}


def default_kms_key(session: Session, envelope: Envelope) -> KmsKeyRow:
    """Hangar's managed key, created the first time it is needed."""
    row = find_kms_key_by_alias(session, DEFAULT_KMS_KEY_ALIAS)
    if row is None:
        row = add_kms_key(session, envelope, key_id=new_id(), alias=DEFAULT_KMS_KEY_ALIAS, managed=True,
                          description="Hangar-managed default key for environment secrets")
    return row


def open_operation(session: Session, *, env_id: str, kind: OperationKind, revision: int,
                   first: StepRecord | None = None) -> OperationRow:
    """Open an operation. At most one operation of an environment is open at a time: a delete
    closes whatever else is open (in this transaction, so nothing resumes it after a restart),
    and any other kind is refused while one is open."""
    others = open_operations(session, env_id)
    if others and kind != OperationKind.DELETE:
        raise OperationInProgress(others[0].kind)
    close_operations(session, env_id, step=f"superseded by {kind}")
    row = OperationRow(environment_id=env_id, kind=str(kind), revision=revision, steps=[first.as_json()] if first else [],
                       started_at=utcnow(), updated_at=utcnow())
    session.add(row)
    session.flush()
    return row


def open_operations(session: Session, env_id: str) -> list[OperationRow]:
    return list(session.scalars(select(OperationRow).where(OperationRow.environment_id == env_id,
                                                          OperationRow.done.is_(False)).order_by(OperationRow.id)))


def close_operations(session: Session, env_id: str, *, step: str) -> list[int]:
    """Mark the environment's open operations done, with `step` as the last step; their ids."""
    closed = []
    for row in open_operations(session, env_id):
        close_operation(row, step=step)
        closed.append(row.id)
    return closed


def close_operation(row: OperationRow, *, step: str) -> None:
    """Close an operation that another one took the place of."""
    append_step(row, StepRecord(step=step, outcome=Outcome.SUPERSEDED))


def append_step(row: OperationRow, record: StepRecord) -> None:
    """Record a finished step; one with an outcome closes the operation."""
    row.steps = [*row.steps, record.as_json()]
    if record.outcome is not None:
        row.done = True


def steps_of(row: OperationRow) -> list[StepRecord]:
    return [StepRecord.read(raw) for raw in row.steps or []]


def pending_operations(session: Session) -> list[OperationRow]:
    return list(session.scalars(select(OperationRow).where(OperationRow.done.is_(False)).order_by(OperationRow.id)))


def list_operations(session: Session, env_id: str) -> list[OperationRow]:
    return list(session.scalars(select(OperationRow).where(OperationRow.environment_id == env_id).order_by(OperationRow.id)))


def latest_operation(session: Session, env_id: str) -> OperationRow | None:
    return session.scalar(
        select(OperationRow).where(OperationRow.environment_id == env_id).order_by(OperationRow.id.desc()).limit(1)
    )
