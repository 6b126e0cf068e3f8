"""Console sessions: one row per signed-in browser. The row's key is the SHA-256 of the cookie's
value, so the table never holds a usable session; the principal and role are copied from the access
key at sign-in and checked against it again on every request (a revoked key ends its sessions)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from hangar.store.models import Base, UTCDateTime


class ConsoleSessionRow(Base):
    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the cookie value
    principal_id: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
