"""Alert rules: what to watch, in which environment (or all), and where to say it.

A rule's target and webhook secret are encrypted at rest and never answered: a target is shown
as its scheme and host only (a Slack webhook's path is its secret). The SMTP server that email
alerts go through is a control-plane setting, its password encrypted and never answered.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from hangar.context import Context
from hangar.errors import AlertAlreadyExists, AlertNotFound
from hangar.schemas.alerts import (
    THRESHOLDS, AlertCreate, AlertEvent, AlertPublic, DeliveryPublic, SmtpPublic, SmtpSettings,
)
from hangar.store import alerts as store, repository
from hangar.store.alert_models import AlertRuleRow
from hangar.store.models import EnvironmentRow, utcnow

SMTP = "smtp"


def shown_target(kind: str, target: str) -> str:
    if kind == "email":
        return target
    parts = urlsplit(target)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}" + ("/…" if parts.path.strip("/") or parts.query else "")


def public(ctx: Context, rule: AlertRuleRow, environment: str | None) -> AlertPublic:
    target, _ = store.rule_secrets(ctx.envelope, rule)
    unit = THRESHOLDS.get(AlertEvent(rule.event), (None, None))[0]
    return AlertPublic(name=rule.name, environment=environment, event=rule.event, threshold=rule.threshold,
                       threshold_unit=unit, dag=rule.dag_id, delivery=rule.kind, target=shown_target(rule.kind, target),
                       signed=rule.secret is not None, created_at=rule.created_at)


def _environment_name(session, env_id: str | None) -> str | None:
    return None if env_id is None else session.get(EnvironmentRow, env_id).name


def create_alert(ctx: Context, *, request: AlertCreate) -> AlertPublic:
    event = AlertEvent(request.event)
    with ctx.store.session() as session:
        if store.find_rule(session, request.name) is not None:
            raise AlertAlreadyExists(request.name)
        env_id = repository.get_live(session, request.environment).id if request.environment else None
        threshold = request.threshold if request.threshold is not None else THRESHOLDS.get(event, (None, None))[1]
        rule = AlertRuleRow(name=request.name, environment_id=env_id, event=event.value, threshold=threshold,
                            dag_id=request.dag, kind=request.kind.value, target_key=b"", target=b"", created_at=utcnow())
        session.add(rule)
        session.flush()  # its id binds the encrypted parts to it
        rule.target_key, rule.target = ctx.envelope.encrypt(request.target, context=store.rule_context(rule.id, "target"))
        if request.secret:
            rule.secret_key, rule.secret = ctx.envelope.encrypt(request.secret, context=store.rule_context(rule.id, "secret"))
        return public(ctx, rule, request.environment)


def list_alerts(ctx: Context) -> list[AlertPublic]:
    with ctx.store.session() as session:
        return [public(ctx, rule, _environment_name(session, rule.environment_id)) for rule in store.list_rules(session)]


def delete_alert(ctx: Context, *, name: str) -> None:
    with ctx.store.session() as session:
        rule = store.find_rule(session, name)
        if rule is None:
            raise AlertNotFound(name)
        session.delete(rule)


def test_alert(ctx: Context, *, name: str) -> DeliveryPublic:
    """A test notice to the rule's target, delivered (and retried) like any other."""
    with ctx.store.session() as session:
        rule = store.find_rule(session, name)
        if rule is None:
            raise AlertNotFound(name)
        environment = _environment_name(session, rule.environment_id)
        payload = {"alert": rule.name, "event": rule.event, "state": "test", "environment": environment,
                   "summary": f"a test of alert {rule.name!r}", "at": utcnow().isoformat()}
        row = store.add_delivery(session, rule_id=rule.id, incident_id=None, environment=environment, kind="test",
                                 payload=payload)
        session.flush()
        return delivery_public(row, rule)


def delivery_public(row, rule: AlertRuleRow) -> DeliveryPublic:
    return DeliveryPublic(id=row.id, alert=rule.name, environment=row.environment_name, event=rule.event, kind=row.kind,
                          state=row.state, attempts=row.attempts, summary=row.payload.get("summary", ""),
                          created_at=row.created_at, delivered_at=row.delivered_at, last_error=row.last_error)


def alert_history(ctx: Context, *, name: str | None = None, limit: int = 200) -> list[DeliveryPublic]:
    """Deliveries, newest first: every alert, resolved notice and test, with its attempts."""
    with ctx.store.session() as session:
        rule_id = None
        if name is not None:
            rule = store.find_rule(session, name)
            if rule is None:
                raise AlertNotFound(name)
            rule_id = rule.id
        rules = {rule.id: rule for rule in store.list_rules(session)}
        return [delivery_public(row, rules[row.rule_id]) for row in store.list_deliveries(session, rule_id=rule_id, limit=limit)]


def set_smtp(ctx: Context, *, settings: SmtpSettings) -> SmtpPublic:
    with ctx.store.session() as session:
        store.put_setting(session, ctx.envelope, name=SMTP, value=settings.model_dump())
    return smtp_public(settings)


def get_smtp(ctx: Context) -> SmtpSettings | None:
    with ctx.store.session() as session:
        value = store.get_setting(session, ctx.envelope, name=SMTP)
    return SmtpSettings(**value) if value else None


def smtp_public(settings: SmtpSettings) -> SmtpPublic:
    return SmtpPublic(host=settings.host, port=settings.port, starttls=settings.starttls, user=settings.user,
                      password_set=bool(settings.password), sender=settings.sender)
