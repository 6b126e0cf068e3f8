"""Alert rules, their incidents and deliveries, and the SMTP settings email alerts use."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$"


class AlertEvent(StrEnum):
    status_changed = "status_changed"  # to UNAVAILABLE, *_FAILED or ROLLING_BACK
    update_failed = "update_failed"
    scheduler_heartbeat_missing = "scheduler_heartbeat_missing"  # threshold: seconds
    task_queued_too_long = "task_queued_too_long"  # threshold: minutes
    dag_run_failed = "dag_run_failed"  # dag: one DAG, or any
    task_running_too_long = "task_running_too_long"  # threshold: minutes
    dag_import_errors = "dag_import_errors"
    workers_at_max = "workers_at_max"  # threshold: minutes


# the threshold each event takes, its unit, and its default
THRESHOLDS: dict[AlertEvent, tuple[str, float]] = {
    AlertEvent.scheduler_heartbeat_missing: ("seconds", 60.0),
    AlertEvent.task_queued_too_long: ("minutes", 10.0),
    AlertEvent.task_running_too_long: ("minutes", 60.0),
    AlertEvent.workers_at_max: ("minutes", 10.0),
}


class DeliveryKind(StrEnum):
    webhook = "webhook"
    slack = "slack"
    email = "email"


def parse_event(text: str) -> AlertEvent:
    try:
        return AlertEvent(text)
    except ValueError:
        raise ValueError(f"unknown event {text!r}: events are {', '.join(e.value for e in AlertEvent)}") from None


class AlertCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    environment: str | None = None  # None with all_environments
    all_environments: bool = False
    event: str
    threshold: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    dag: str | None = None  # dag_run_failed only
    webhook: str | None = None
    secret: str | None = Field(default=None, min_length=8, max_length=512)  # HMAC key of a webhook
    slack_webhook: str | None = None
    email: str | None = None

    @field_validator("event")
    @classmethod
    def _event(cls, value: str) -> str:
        return parse_event(value).value

    @field_validator("webhook", "slack_webhook")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and (value.count("@") != 1 or value.startswith("@") or value.endswith("@")
                                  or any(c.isspace() for c in value)):
            raise ValueError(f"{value!r} is not an email address")
        return value

    @model_validator(mode="after")
    def _shape(self) -> "AlertCreate":
        if bool(self.environment) == self.all_environments:
            raise ValueError("name one environment, or all of them (all_environments), not both or neither")
        targets = [k for k in ("webhook", "slack_webhook", "email") if getattr(self, k)]
        if len(targets) != 1:
            raise ValueError("give exactly one delivery: webhook, slack_webhook or email")
        if self.secret and not self.webhook:
            raise ValueError("a secret signs a generic webhook's deliveries; give it with webhook only")
        event = AlertEvent(self.event)
        if self.threshold is not None and event not in THRESHOLDS:
            raise ValueError(f"event {event.value} takes no threshold")
        if self.dag and event != AlertEvent.dag_run_failed:
            raise ValueError("dag applies to dag_run_failed only")
        return self

    @property
    def kind(self) -> DeliveryKind:
        return DeliveryKind.webhook if self.webhook else DeliveryKind.slack if self.slack_webhook else DeliveryKind.email

    @property
    def target(self) -> str:
        return self.webhook or self.slack_webhook or self.email or ""


class AlertPublic(BaseModel):
    name: str
    environment: str | None  # None: every environment
    event: str
    threshold: float | None
    threshold_unit: str | None
    dag: str | None
    delivery: str
    target: str  # shown without its path (a Slack webhook's path is its secret) or query
    signed: bool  # a webhook with a secret
    created_at: datetime


class DeliveryPublic(BaseModel):
    id: int
    alert: str
    environment: str | None
    event: str
    kind: str  # alert, resolved or test
    state: str  # pending, delivered, failed
    attempts: int
    summary: str
    created_at: datetime
    delivered_at: datetime | None
    last_error: str | None


class SmtpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    user: str | None = None
    password: str | None = None  # encrypted at rest, never answered
    sender: str = "hangar@localhost"


class SmtpPublic(BaseModel):
    host: str
    port: int
    starttls: bool
    user: str | None
    password_set: bool
    sender: str
