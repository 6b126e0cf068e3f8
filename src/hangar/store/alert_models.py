"""Alert rules, the incidents they open, the deliveries each incident sends, and control-plane
settings kept encrypted (the SMTP server's). Targets (a Slack webhook's URL is its secret) and
secrets are envelope-encrypted, each bound to its row."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hangar.store.models import Base, UTCDateTime, utcnow


class AlertRuleRow(Base):
    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    # None: every environment
    environment_id: Mapped[str | None] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(40))
    threshold: Mapped[float | None] = mapped_column(Float)
    dag_id: Mapped[str | None] = mapped_column(String(250))
    kind: Mapped[str] = mapped_column(String(16))  # webhook, slack, email
    target_key: Mapped[bytes] = mapped_column(LargeBinary)
    target: Mapped[bytes] = mapped_column(LargeBinary)
    secret_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlertIncidentRow(Base):
    """One condition of one rule in one environment, from when it held until it cleared."""

    __tablename__ = "alert_incidents"
    __table_args__ = (Index("ix_alert_incidents_open", "rule_id", "environment_id", "key", "resolved_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rules.id", ondelete="CASCADE"))
    environment_id: Mapped[str] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(300))  # what the condition is about (a DAG, a status)
    summary: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AlertDeliveryRow(Base):
    """One notice (alert, resolved or test) to one rule's target, with every attempt's outcome."""

    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rules.id", ondelete="CASCADE"), index=True)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("alert_incidents.id", ondelete="CASCADE"))
    environment_name: Mapped[str | None] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(16))  # alert, resolved, test
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)  # pending, delivered, failed
    payload: Mapped[dict] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SecretSettingRow(Base):
    """A control-plane setting kept encrypted (JSON), such as the SMTP server's."""

    __tablename__ = "secret_settings"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
