"""SQLAlchemy tables. Timestamps are timezone-aware UTC.

Invariants: revisions are never updated after insert; an environment row is the
only mutable record of its status, and every status change has an event row.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """SQLite drops tzinfo; this puts UTC back on the way out."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return value.astimezone(timezone.utc).replace(tzinfo=None) if value is not None else None

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=timezone.utc) if value is not None else None


class Base(DeclarativeBase):
    pass


class EnvironmentRow(Base):
    __tablename__ = "environments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(32))
    status_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # the revision the user asked for last, the one the processes run, and the last one that came up healthy
    revision: Mapped[int] = mapped_column(Integer)
    running_revision: Mapped[int | None] = mapped_column(Integer)
    last_good_revision: Mapped[int | None] = mapped_column(Integer)
    ports: Mapped[dict] = mapped_column(JSON, default=dict)
    database_name: Mapped[str | None] = mapped_column(String(63))
    last_update_status: Mapped[str | None] = mapped_column(String(16))
    last_update_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_update_revision: Mapped[int | None] = mapped_column(Integer)
    last_update_error_code: Mapped[str | None] = mapped_column(String(64))
    last_update_error_message: Mapped[str | None] = mapped_column(Text)
    # maintenance (hangar.domain.maintenance): raised to rebuild the runtime under a new key;
    # a rebuild Hangar wants, with why, waits here for the weekly window
    runtime_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    maintenance_pending: Mapped[str | None] = mapped_column(Text)
    maintenance_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("uq_environments_live_name", "name", unique=True, sqlite_where=text("status != 'DELETED'")),
    )


class RevisionRow(Base):
    __tablename__ = "revisions"

    environment_id: Mapped[str] = mapped_column(ForeignKey("environments.id"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    spec: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EventRow(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    environment_id: Mapped[str] = mapped_column(ForeignKey("environments.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    previous: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)


class SecretRow(Base):
    """Envelope-encrypted: `wrapped_key` is the data key under the master key."""

    __tablename__ = "secrets"

    environment_id: Mapped[str] = mapped_column(ForeignKey("environments.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)


class OperationRow(Base):
    """Reconcile progress: one row per (environment, operation), steps appended as they finish."""

    __tablename__ = "operations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    environment_id: Mapped[str] = mapped_column(ForeignKey("environments.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    revision: Mapped[int] = mapped_column(Integer)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    steps: Mapped[list] = mapped_column(JSON, default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AccessKeyRow(Base):
    """An API principal. The secret is envelope-encrypted: SigV4 needs it to recompute signatures."""

    __tablename__ = "access_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditRow(Base):
    """Who did what, when, with what outcome. Never holds request bodies or secrets."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    principal: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(1224))
    outcome: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)


# --- KMS keys (hangar.domain.keys) ---


class KmsKeyRow(Base):
    """A KMS-like key: an id in AWS key-id form, an optional alias, and versions of material.

    `current_version` wraps every new data key; rotation adds a version and re-wraps the
    data keys under older ones in the same transaction."""

    __tablename__ = "kms_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    alias: Mapped[str | None] = mapped_column(String(256), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    managed: Mapped[bool] = mapped_column(Boolean, default=False)  # Hangar's own default key
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class KmsKeyVersionRow(Base):
    """256-bit key material sealed under the master key; never shown, never logged.

    Versions are never deleted: a superseded one stays readable, though after a rotation
    no data key is wrapped under it any more."""

    __tablename__ = "kms_key_versions"

    key_id: Mapped[str] = mapped_column(ForeignKey("kms_keys.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    wrapped_material: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# Which KMS key version wraps a secret's data key; both NULL for rows written before
# KMS keys existed, whose data key is wrapped under the master key (read as such, and
# re-wrapped under the environment's key on its next write). Declared here, after the
# class, to keep this file append-only; migration 0004 adds the columns.
SecretRow.kms_key_id = mapped_column("kms_key_id", String(36), ForeignKey("kms_keys.id"), nullable=True)
SecretRow.kms_key_version = mapped_column("kms_key_version", Integer, nullable=True)


# --- snapshots (hangar.domain.snapshots) ---


class SnapshotRow(Base):
    """One snapshot archive under HANGAR_HOME/snapshots/<environment id>/.

    `sha256` is the archive's checksum when it was written; a restore refuses a file that
    no longer matches. The fernet key the dumped database's secrets are encrypted with is
    kept here, envelope-encrypted, so a clone with its own secrets can still read them."""

    __tablename__ = "snapshots"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    environment_id: Mapped[str] = mapped_column(ForeignKey("environments.id"), index=True)
    environment_name: Mapped[str] = mapped_column(String(80))
    revision: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # manual, scheduled or pre-upgrade
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    airflow_version: Mapped[str] = mapped_column(String(16))
    fernet_wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    fernet_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)


# --- worker autoscaling (hangar.reconciler.loops.autoscaler) ---


class WorkerSampleRow(Base):
    """One autoscaler reading of a Celery environment: the time series behind `workers` in
    `hangar env get` and the observability pages. Old samples are pruned by the autoscaler."""

    __tablename__ = "worker_samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    environment_id: Mapped[str] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    current: Mapped[int] = mapped_column(Integer)
    desired: Mapped[int] = mapped_column(Integer)
    queued: Mapped[int] = mapped_column(Integer)
    running: Mapped[int] = mapped_column(Integer)


# --- worker hosts that joined a Celery environment (hangar.domain.workers) ---


class WorkerTokenRow(Base):
    """A token a host presents to join one environment's Celery workers.

    Only the sha256 of the token is kept: the token itself is shown once, when issued.
    A revoked token stays, so the hosts that used it show as REVOKED."""

    __tablename__ = "worker_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    environment_id: Mapped[str] = mapped_column(ForeignKey("environments.id"), index=True)
    label: Mapped[str | None] = mapped_column(String(200))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WorkerHostRow(Base):
    """A host running Celery workers for an environment, as its last heartbeat described it.

    One row per (environment, hostname): a host that joins again updates its row."""

    __tablename__ = "worker_hosts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    environment_id: Mapped[str] = mapped_column(ForeignKey("environments.id"))
    token_id: Mapped[str] = mapped_column(ForeignKey("worker_tokens.id"), index=True)
    hostname: Mapped[str] = mapped_column(String(253))
    address: Mapped[str] = mapped_column(String(64))  # the peer address the API saw
    concurrency: Mapped[int] = mapped_column(Integer)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    state: Mapped[str] = mapped_column(String(16))  # RUNNING, DRAINING or STOPPED, as the host reports it
    running_tasks: Mapped[int] = mapped_column(Integer, default=0)
    workers: Mapped[list] = mapped_column(JSON, default=list)  # Celery worker names on the host
    airflow_version: Mapped[str | None] = mapped_column(String(32))
    runtime_key: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        Index("uq_worker_hosts_environment_hostname", "environment_id", "hostname", unique=True),
    )


class MetricSampleRow(Base):
    """Every series of one environment at one moment ({series: value}, series named as
    Prometheus shows them): the embedded time series behind `hangar env metrics`. Kept
    metrics_retention_days."""

    __tablename__ = "metric_samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    environment_id: Mapped[str] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    values: Mapped[dict] = mapped_column(JSON)
