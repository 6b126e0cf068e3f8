"""What the API takes and answers about access keys."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class AccessKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str
    description: str | None = None


class AccessKeyCreated(BaseModel):
    access_key_id: str
    secret_access_key: str
    role: str
    api_key: str  # for the native API: Authorization: Bearer <api_key>


class AccessKeyPublic(BaseModel):
    access_key_id: str
    role: str
    description: str | None
    created_at: datetime
    revoked: bool
