"""Queries over the snapshots table. No business rules live here."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hangar.crypto import Envelope
from hangar.store.models import SnapshotRow


def _fernet_context(snapshot_id: str) -> str:
    return f"snapshot/{snapshot_id}/fernet_key"


def add(session: Session, envelope: Envelope, *, row: SnapshotRow, fernet_key: str) -> SnapshotRow:
    """Insert `row` with `fernet_key` sealed under the master key (bound to the snapshot's id)."""
    row.fernet_wrapped_key, row.fernet_ciphertext = envelope.encrypt(fernet_key, context=_fernet_context(row.id))
    session.add(row)
    session.flush()
    return row


def fernet_key(envelope: Envelope, row: SnapshotRow) -> str:
    return envelope.decrypt(row.fernet_wrapped_key, row.fernet_ciphertext, context=_fernet_context(row.id))


def find(session: Session, snapshot_id: str) -> SnapshotRow | None:
    return session.get(SnapshotRow, snapshot_id)


def list_for(session: Session, env_id: str) -> list[SnapshotRow]:
    """Newest first."""
    return list(session.scalars(select(SnapshotRow).where(SnapshotRow.environment_id == env_id)
                                .order_by(SnapshotRow.created_at.desc(), SnapshotRow.id)))


def list_all(session: Session) -> list[SnapshotRow]:
    return list(session.scalars(select(SnapshotRow).order_by(SnapshotRow.created_at.desc(), SnapshotRow.id)))


def last_at(session: Session, env_id: str, *, kind: str) -> datetime | None:
    return session.scalar(select(SnapshotRow.created_at).where(SnapshotRow.environment_id == env_id,
                                                               SnapshotRow.kind == kind)
                          .order_by(SnapshotRow.created_at.desc()).limit(1))


def delete(session: Session, row: SnapshotRow) -> None:
    session.delete(row)
