"""What the API answers about logs."""
from __future__ import annotations

from pydantic import BaseModel


class LogLinePublic(BaseModel):
    time: str  # UTC, ISO 8601 with microseconds
    component: str
    level: str
    message: str


class TaskLogPublic(BaseModel):
    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    map_index: int
    content: str
