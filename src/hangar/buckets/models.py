"""Tables for buckets and their object versions.

Invariants:
- a version row is never changed after insert, except that `is_latest` moves to the
  newest row of its (bucket, key); a partial unique index allows one latest row per key;
- a row with `deleted` is a delete marker: no blob, `sha256` NULL, `size` 0;
- every other row names a blob that was on disk, complete, before the row was written.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from hangar.store.models import Base, UTCDateTime, utcnow


class BucketRow(Base):
    __tablename__ = "buckets"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BucketObjectRow(Base):
    """One version of one key; `id` orders versions (newest is highest)."""

    __tablename__ = "bucket_objects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bucket: Mapped[str] = mapped_column(ForeignKey("buckets.name"))
    key: Mapped[str] = mapped_column(String(1024))
    version_id: Mapped[str] = mapped_column(String(32), unique=True)
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    is_latest: Mapped[bool] = mapped_column(Boolean)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        Index("ix_bucket_objects_bucket_key", "bucket", "key", "id"),
        Index("uq_bucket_objects_latest", "bucket", "key", unique=True, sqlite_where=text("is_latest = 1")),
    )
