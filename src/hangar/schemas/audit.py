"""What the API answers from the audit log."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class AuditEntry(BaseModel):
    at: datetime
    principal: str
    role: str
    action: str
    target: str | None
    outcome: str
    status_code: int
