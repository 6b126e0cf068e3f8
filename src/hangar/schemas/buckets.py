"""What the API takes and answers about buckets and their object versions."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class BucketCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


class BucketPublic(BaseModel):
    name: str
    arn: str
    created_at: datetime


class ObjectVersionPublic(BaseModel):
    bucket: str
    key: str
    version_id: str
    sha256: str | None  # None for a delete marker
    size: int
    created_at: datetime
    is_latest: bool
    delete_marker: bool
