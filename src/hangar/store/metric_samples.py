"""Each environment's series over time (MetricSampleRow): one row per environment per sample."""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hangar.store.models import MetricSampleRow

_CHUNK = 500


def series_key(name: str, labels: dict[str, str]) -> str:
    """name, or name{"label":"value",...} (labels as sorted JSON, so that the key parses back)."""
    return name + (json.dumps(labels, sort_keys=True, separators=(",", ":")) if labels else "")


def parse_key(key: str) -> tuple[str, dict[str, str]]:
    name, brace, rest = key.partition("{")
    return name, (json.loads(brace + rest) if brace else {})


def add(session: Session, *, env_id: str, at: datetime, values: dict[str, float]) -> None:
    session.add(MetricSampleRow(environment_id=env_id, at=at, values=values))


def since(session: Session, env_id: str, start: datetime, *, limit: int = 20000) -> list[MetricSampleRow]:
    """The samples taken since `start`, oldest first: all of them, or when there are more than
    `limit`, `limit` of them spread evenly over the window, the first and the newest included (so
    that a long window still reaches now, at a coarser step)."""
    where = (MetricSampleRow.environment_id == env_id, MetricSampleRow.at >= start)
    ids = list(session.scalars(select(MetricSampleRow.id).where(*where).order_by(MetricSampleRow.id)))
    if len(ids) <= limit:
        return list(session.scalars(select(MetricSampleRow).where(*where).order_by(MetricSampleRow.id).limit(limit)))
    picked = [ids[-1]] if limit < 2 else [ids[(len(ids) - 1) * i // (limit - 1)] for i in range(limit)]
    rows: list[MetricSampleRow] = []
    for first in range(0, len(picked), _CHUNK):  # a bounded IN list per query
        chunk = select(MetricSampleRow).where(MetricSampleRow.id.in_(picked[first:first + _CHUNK]))
        rows.extend(session.scalars(chunk.order_by(MetricSampleRow.id)))
    return rows


def prune(session: Session, *, before: datetime) -> int:
    return session.execute(delete(MetricSampleRow).where(MetricSampleRow.at < before)).rowcount or 0
