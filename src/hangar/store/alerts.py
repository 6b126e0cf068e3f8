"""Alert rules, incidents and deliveries in the store, and encrypted control-plane settings."""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hangar.crypto import Envelope
from hangar.store.alert_models import AlertDeliveryRow, AlertIncidentRow, AlertRuleRow, SecretSettingRow
from hangar.store.models import utcnow


def rule_context(rule_id: int, part: str) -> str:
    return f"alert-rule/{rule_id}/{part}"


def find_rule(session: Session, name: str) -> AlertRuleRow | None:
    return session.scalars(select(AlertRuleRow).where(AlertRuleRow.name == name)).first()


def list_rules(session: Session) -> list[AlertRuleRow]:
    return list(session.scalars(select(AlertRuleRow).order_by(AlertRuleRow.name)))


def rule_secrets(envelope: Envelope, rule: AlertRuleRow) -> tuple[str, str | None]:
    """(target, secret) of a rule, decrypted."""
    target = envelope.decrypt(rule.target_key, rule.target, context=rule_context(rule.id, "target"))
    secret = None
    if rule.secret is not None and rule.secret_key is not None:
        secret = envelope.decrypt(rule.secret_key, rule.secret, context=rule_context(rule.id, "secret"))
    return target, secret


def open_incident(session: Session, *, rule_id: int, env_id: str, key: str) -> AlertIncidentRow | None:
    query = select(AlertIncidentRow).where(AlertIncidentRow.rule_id == rule_id, AlertIncidentRow.environment_id == env_id,
                                           AlertIncidentRow.key == key, AlertIncidentRow.resolved_at.is_(None))
    return session.scalars(query).first()


def open_incidents(session: Session, *, rule_id: int, env_id: str) -> list[AlertIncidentRow]:
    query = select(AlertIncidentRow).where(AlertIncidentRow.rule_id == rule_id, AlertIncidentRow.environment_id == env_id,
                                           AlertIncidentRow.resolved_at.is_(None))
    return list(session.scalars(query))


def add_delivery(session: Session, *, rule_id: int, incident_id: int | None, environment: str | None, kind: str,
                 payload: dict) -> AlertDeliveryRow:
    row = AlertDeliveryRow(rule_id=rule_id, incident_id=incident_id, environment_name=environment, kind=kind,
                           state="pending", payload=payload, attempts=0, next_attempt_at=utcnow(), created_at=utcnow())
    session.add(row)
    return row


def due_deliveries(session: Session, now: datetime, *, limit: int = 50) -> list[AlertDeliveryRow]:
    query = select(AlertDeliveryRow).where(AlertDeliveryRow.state == "pending", AlertDeliveryRow.next_attempt_at <= now)
    return list(session.scalars(query.order_by(AlertDeliveryRow.id).limit(limit)))


def list_deliveries(session: Session, *, rule_id: int | None = None, limit: int = 200) -> list[AlertDeliveryRow]:
    query = select(AlertDeliveryRow)
    if rule_id is not None:
        query = query.where(AlertDeliveryRow.rule_id == rule_id)
    return list(session.scalars(query.order_by(AlertDeliveryRow.id.desc()).limit(limit)))


def put_setting(session: Session, envelope: Envelope, *, name: str, value: dict) -> None:
    wrapped, ciphertext = envelope.encrypt(json.dumps(value), context=f"setting/{name}")
    row = session.get(SecretSettingRow, name)
    if row is None:
        session.add(SecretSettingRow(name=name, wrapped_key=wrapped, ciphertext=ciphertext, updated_at=utcnow()))
    else:
        row.wrapped_key, row.ciphertext, row.updated_at = wrapped, ciphertext, utcnow()


def get_setting(session: Session, envelope: Envelope, *, name: str) -> dict | None:
    row = session.get(SecretSettingRow, name)
    if row is None:
        return None
    return json.loads(envelope.decrypt(row.wrapped_key, row.ciphertext, context=f"setting/{name}"))
