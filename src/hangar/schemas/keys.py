"""What the API takes and answers about KMS keys; never their material."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alias: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=8192)  # AWS KMS's limit


class KeyPublic(BaseModel):
    key_id: str
    arn: str
    alias: str | None
    description: str | None
    key_manager: str  # HANGAR for the default key, CUSTOMER for keys people create (AWS says AWS/CUSTOMER)
    current_version: int
    versions: int
    created_at: datetime
    rotated_at: datetime | None


class KeyRotated(KeyPublic):
    rewrapped: int  # data keys moved from older versions to the new one
