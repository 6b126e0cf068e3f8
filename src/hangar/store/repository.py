"""Queries over the control plane's tables. No business rules live here."""
from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from hangar.crypto import Envelope
from hangar.domain.spec import Spec
from hangar.errors import EnvironmentNotFound
from hangar.store.models import EnvironmentRow, EventRow, OperationRow, RevisionRow, SecretRow, utcnow


def new_id() -> str:
    return str(uuid.uuid4())


def find_live(session: Session, name: str) -> EnvironmentRow | None:
    return session.scalar(select(EnvironmentRow).where(EnvironmentRow.name == name, EnvironmentRow.status != "DELETED"))


def get_live(session: Session, name: str) -> EnvironmentRow:
    row = find_live(session, name)
    if row is None:
        raise EnvironmentNotFound(name)
    return row


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


def list_events(session: Session, env_id: str) -> list[EventRow]:
    return list(session.scalars(select(EventRow).where(EventRow.environment_id == env_id).order_by(EventRow.id)))


def used_ports(session: Session) -> set[int]:
    ports: set[int] = set()
    for row in list_live(session):
        ports.update(int(p) for p in (row.ports or {}).values())
    return ports


def put_secret(session: Session, envelope: Envelope, *, env_id: str, name: str, value: str) -> None:
    wrapped, ciphertext = envelope.encrypt(value, context=f"{env_id}/{name}")
    row = session.get(SecretRow, (env_id, name))
    if row is None:
        session.add(SecretRow(environment_id=env_id, name=name, wrapped_key=wrapped, ciphertext=ciphertext))
    else:
        row.wrapped_key, row.ciphertext = wrapped, ciphertext


def get_secrets(session: Session, envelope: Envelope, *, env_id: str) -> dict[str, str]:
    rows = session.scalars(select(SecretRow).where(SecretRow.environment_id == env_id))
    return {row.name: envelope.decrypt(row.wrapped_key, row.ciphertext, context=f"{env_id}/{row.name}") for row in rows}


def open_operation(session: Session, *, env_id: str, kind: str, revision: int) -> OperationRow:
    row = OperationRow(environment_id=env_id, kind=kind, revision=revision, steps=[], started_at=utcnow(), updated_at=utcnow())
    session.add(row)
    session.flush()
    return row


def pending_operations(session: Session) -> list[OperationRow]:
    return list(session.scalars(select(OperationRow).where(OperationRow.done.is_(False)).order_by(OperationRow.id)))


def latest_operation(session: Session, env_id: str) -> OperationRow | None:
    return session.scalar(
        select(OperationRow).where(OperationRow.environment_id == env_id).order_by(OperationRow.id.desc()).limit(1)
    )
