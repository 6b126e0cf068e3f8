"""Git credentials: the secret envelope-encrypted and bound to the credential's name."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hangar.store.models import Base, UTCDateTime


class GitCredentialRow(Base):
    __tablename__ = "git_credentials"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # token or ssh
    secret_key: Mapped[bytes] = mapped_column(LargeBinary)
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    known_hosts: Mapped[str | None] = mapped_column(Text)  # public host keys: not a secret
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
