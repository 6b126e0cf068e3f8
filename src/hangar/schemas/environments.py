"""Requests on an environment that are not a spec (those are hangar.schemas.spec)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: int
    allow_downgrade: bool = False
