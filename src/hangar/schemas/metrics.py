"""What the API answers about an environment's metrics over time."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class MetricSeriesPublic(BaseModel):
    name: str
    labels: dict[str, str]
    points: list[tuple[datetime, float]]  # oldest first
