"""Each environment's series over time (MetricSampleRow): one row per environment per sample."""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hangar.store.models import MetricSampleRow


def series_key(name: str, labels: dict[str, str]) -> str:
    """name, or name{"label":"value",...} (labels as sorted JSON, so that the key parses back)."""
    return name + (json.dumps(labels, sort_keys=True, separators=(",", ":")) if labels else "")


def parse_key(key: str) -> tuple[str, dict[str, str]]:
    name, brace, rest = key.partition("{")
    return name, (json.loads(brace + rest) if brace else {})


def add(session: Session, *, env_id: str, at: datetime, values: dict[str, float]) -> None:
    session.add(MetricSampleRow(environment_id=env_id, at=at, values=values))


def since(session: Session, env_id: str, start: datetime, *, limit: int = 20000) -> list[MetricSampleRow]:
    query = select(MetricSampleRow).where(MetricSampleRow.environment_id == env_id, MetricSampleRow.at >= start)
    return list(session.scalars(query.order_by(MetricSampleRow.id).limit(limit)))


def prune(session: Session, *, before: datetime) -> int:
    return session.execute(delete(MetricSampleRow).where(MetricSampleRow.at < before)).rowcount or 0
