"""The autoscaler's readings of Celery environments (WorkerSampleRow), as a time series."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hangar.store.models import WorkerSampleRow


def add(session: Session, *, env_id: str, at: datetime, current: int, desired: int, queued: int, running: int) -> None:
    session.add(WorkerSampleRow(environment_id=env_id, at=at, current=current, desired=desired, queued=queued,
                                running=running))


def latest(session: Session, env_id: str) -> WorkerSampleRow | None:
    query = select(WorkerSampleRow).where(WorkerSampleRow.environment_id == env_id)
    return session.scalars(query.order_by(WorkerSampleRow.id.desc()).limit(1)).first()


def since(session: Session, env_id: str, start: datetime, *, limit: int = 10000) -> list[WorkerSampleRow]:
    query = select(WorkerSampleRow).where(WorkerSampleRow.environment_id == env_id, WorkerSampleRow.at >= start)
    return list(session.scalars(query.order_by(WorkerSampleRow.id).limit(limit)))


def prune(session: Session, *, before: datetime) -> int:
    return session.execute(delete(WorkerSampleRow).where(WorkerSampleRow.at < before)).rowcount or 0
