"""Alert rules, incidents that alert once and resolve once, and deliveries to a real local HTTP
receiver (signed), a Slack-compatible one, and a real SMTP server (aiosmtpd), with an
unreachable target recorded, retried and never in the way of the others."""
from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from aiosmtpd.controller import Controller
from pydantic import ValidationError

from hangar.domain import alerts
from hangar.domain.status import Status
from hangar.errors import AlertAlreadyExists, EnvironmentNotFound
from hangar.reconciler.loops.alert_delivery import deliver_due
from hangar.reconciler.loops.alerting import Alerting
from hangar.schemas.alerts import AlertCreate, SmtpSettings
from hangar.store import repository
from hangar.store.alert_models import AlertDeliveryRow
from hangar.store.models import utcnow
from tests.unit.domain.test_workers import make_env

SECRET = "s3cret-hmac-key"


class Receiver:
    """A real HTTP server on loopback that keeps what it is sent."""

    def __init__(self, status: int = 200) -> None:
        got = self.got = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                got.append((dict(self.headers), body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/team-a?token=abc"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def env(ctx, tmp_path):
    make_env(ctx, tmp_path, "sales", executor="local")
    return "sales"


def set_status(ctx, name, status, reason="x"):
    with ctx.store.session() as session:
        row = repository.get_live(session, name)
        row.status, row.status_reason = status, reason


def deliveries(ctx):
    with ctx.store.session() as session:
        return [(d.kind, d.state, d.attempts, d.last_error) for d in session.query(AlertDeliveryRow).order_by(AlertDeliveryRow.id)]


def send(ctx):
    with ThreadPoolExecutor(4) as pool:
        return deliver_due(ctx, pool)


def test_a_rule_is_shown_without_its_secret_or_target_path(ctx, env, receiver):
    rule = alerts.create_alert(ctx, request=AlertCreate(name="ops", environment=env, event="status_changed",
                                                        webhook=receiver.url, secret=SECRET))
    text = json.dumps([rule.model_dump(mode="json"), [r.model_dump(mode="json") for r in alerts.list_alerts(ctx)]])
    assert SECRET not in text and "team-a" not in text and "token" not in text
    assert rule.target == f"http://127.0.0.1:{receiver.server.server_port}/…" and rule.signed
    with pytest.raises(AlertAlreadyExists):
        alerts.create_alert(ctx, request=AlertCreate(name="ops", all_environments=True, event="dag_run_failed",
                                                     email="a@b.c"))


@pytest.mark.parametrize("fields, says", [
    ({"event": "disk_full"}, "unknown event 'disk_full': events are status_changed, update_failed"),
    ({"event": "dag_run_failed", "threshold": 3}, "event dag_run_failed takes no threshold"),
    ({"event": "dag_run_failed", "webhook": None}, "give exactly one delivery"),
    ({"event": "dag_run_failed", "email": "not-an-address", "webhook": None}, "'not-an-address' is not an email address"),
    ({"event": "dag_run_failed", "webhook": "ftp://x"}, "'ftp://x' is not an http:// or https:// URL"),
])
def test_bad_rules_are_refused_with_the_cause(fields, says):
    with pytest.raises(ValidationError, match=says):
        AlertCreate(**{"name": "r", "environment": "sales", "webhook": "http://127.0.0.1:1/x", **fields})


def test_an_alert_on_an_environment_that_does_not_exist_is_refused(ctx):
    with pytest.raises(EnvironmentNotFound, match="environment 'ghost' does not exist"):
        alerts.create_alert(ctx, request=AlertCreate(name="r", environment="ghost", event="status_changed",
                                                     email="a@b.c"))


def test_an_incident_alerts_once_and_resolves_once_with_a_valid_signature(ctx, env, receiver):
    alerts.create_alert(ctx, request=AlertCreate(name="ops", environment=env, event="status_changed",
                                                 webhook=receiver.url, secret=SECRET))
    evaluator = Alerting(ctx)
    set_status(ctx, env, Status.UNAVAILABLE, "scheduler heartbeat 47 s old")
    evaluator.tick()
    evaluator.tick()  # still unavailable: no second alert
    send(ctx)
    set_status(ctx, env, Status.AVAILABLE)
    evaluator.tick()
    send(ctx)
    assert [state for state, *_ in deliveries(ctx)] == ["alert", "resolved"]
    (alert_headers, alert_body), (_, resolved_body) = receiver.got
    expected = "sha256=" + hmac.new(SECRET.encode(), alert_body, hashlib.sha256).hexdigest()
    assert alert_headers["X-Hangar-Signature-256"] == expected
    first, second = json.loads(alert_body), json.loads(resolved_body)
    assert first["state"] == "firing" and first["summary"] == "sales is UNAVAILABLE: scheduler heartbeat 47 s old"
    assert second["state"] == "resolved" and second["incident_id"] == first["incident_id"]


def test_an_unreachable_target_is_recorded_and_retried_and_the_others_still_get_theirs(ctx, env, receiver):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}/nobody"
    ctx.settings.alert_retry_seconds = 0.01
    ctx.settings.alert_delivery_attempts = 2
    alerts.create_alert(ctx, request=AlertCreate(name="dead", environment=env, event="status_changed", webhook=dead))
    alerts.create_alert(ctx, request=AlertCreate(name="slack", environment=env, event="status_changed",
                                                 slack_webhook=receiver.url))
    set_status(ctx, env, Status.UPDATE_FAILED)
    Alerting(ctx).tick()
    send(ctx)
    (_, dead_state, attempts, error), (_, slack_state, _, _) = deliveries(ctx)
    assert (dead_state, attempts, slack_state) == ("pending", 1, "delivered")
    assert error == f"http://127.0.0.1:{dead.split(':')[2].split('/')[0]} did not answer: ConnectError"
    assert json.loads(receiver.got[0][1])["text"].startswith("*[Hangar ALERT] slack: status_changed in sales*")
    with ctx.store.session() as session:  # the backoff has passed
        for row in session.query(AlertDeliveryRow):
            row.next_attempt_at = utcnow() - timedelta(seconds=1)
    send(ctx)
    assert deliveries(ctx)[0][:3] == ("alert", "failed", 2)
    assert [d.state for d in alerts.alert_history(ctx, name="dead")] == ["failed"]


def test_email_reaches_a_real_smtp_server_and_its_password_is_never_answered(ctx, env):
    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            received.append(envelope)
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        shown = alerts.set_smtp(ctx, settings=SmtpSettings(host="127.0.0.1", port=port, starttls=False,
                                                           password="smtp-pass-9", sender="hangar@example.test"))
        assert "smtp-pass-9" not in shown.model_dump_json() and shown.password_set
        alerts.create_alert(ctx, request=AlertCreate(name="mail", environment=env, event="status_changed",
                                                     email="oncall@example.test"))
        set_status(ctx, env, Status.UNAVAILABLE, "triggerer is FATAL")
        Alerting(ctx).tick()
        send(ctx)
    finally:
        controller.stop()
    (mail,) = received
    assert mail.rcpt_tos == ["oncall@example.test"]
    assert b"[Hangar ALERT] mail: status_changed in sales" in mail.content and b"triggerer is FATAL" in mail.content


def test_an_unreachable_smtp_server_is_a_recorded_failed_attempt(ctx, env):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    alerts.set_smtp(ctx, settings=SmtpSettings(host="127.0.0.1", port=port, starttls=False, user="hangar",
                                               password="smtp-pass-9"))
    alerts.create_alert(ctx, request=AlertCreate(name="mail", environment=env, event="status_changed",
                                                 email="oncall@example.test"))
    set_status(ctx, env, Status.UNAVAILABLE)
    Alerting(ctx).tick()
    send(ctx)
    ((kind, state, attempts, error),) = deliveries(ctx)
    assert (kind, state, attempts) == ("alert", "pending", 1)
    assert error == f"SMTP server 127.0.0.1:{port} refused or did not answer: ConnectionRefusedError"
    assert "smtp-pass-9" not in error


def test_without_an_smtp_server_email_alerts_say_so(ctx, env):
    alerts.create_alert(ctx, request=AlertCreate(name="mail", environment=env, event="status_changed",
                                                 email="oncall@example.test"))
    set_status(ctx, env, Status.UNAVAILABLE)
    Alerting(ctx).tick()
    send(ctx)
    assert deliveries(ctx)[0][3] == "no SMTP server is set (hangar alert smtp --host ...)"


def summaries(ctx):
    with ctx.store.session() as session:
        return [(d.kind, d.payload["summary"]) for d in session.query(AlertDeliveryRow).order_by(AlertDeliveryRow.id)]


def test_a_failed_update_alerts_until_an_update_succeeds(ctx, env, receiver):
    alerts.create_alert(ctx, request=AlertCreate(name="upd", environment=env, event="update_failed", webhook=receiver.url))
    with ctx.store.session() as session:
        row = repository.get_live(session, env)
        row.last_update_status, row.last_update_revision = "FAILED", 2
        row.last_update_error_code, row.last_update_error_message = "REQUIREMENTS_FAILED", "no version of nopkg\nmore"
    evaluator = Alerting(ctx)
    evaluator.tick()
    with ctx.store.session() as session:
        repository.get_live(session, env).last_update_status = "SUCCESS"
    evaluator.tick()
    assert summaries(ctx) == [
        ("alert", "the update to revision 2 failed: REQUIREMENTS_FAILED: no version of nopkg"),
        ("resolved", "the update to revision 2 failed: REQUIREMENTS_FAILED: no version of nopkg")]


def test_workers_at_max_for_the_threshold_alert(ctx, tmp_path, receiver):
    from hangar.store import worker_samples

    make_env(ctx, tmp_path, "busy", executor="celery")
    alerts.create_alert(ctx, request=AlertCreate(name="max", environment="busy", event="workers_at_max", threshold=5,
                                                 webhook=receiver.url))
    with ctx.store.session() as session:
        env_id = repository.get_live(session, "busy").id
        maximum = repository.get_spec(session, env_id, 1).max_workers
        now = utcnow()
        for minutes_ago, current in ((9, maximum - 1), (6, maximum), (3, maximum), (0, maximum)):
            worker_samples.add(session, env_id=env_id, at=now - timedelta(minutes=minutes_ago), current=current,
                               desired=current, queued=40, running=10)
    Alerting(ctx).tick()
    ((kind, summary),) = summaries(ctx)
    assert kind == "alert" and summary.startswith(f"workers at max ({maximum}) since ")
    with ctx.store.session() as session:
        worker_samples.add(session, env_id=env_id, at=utcnow(), current=maximum - 1, desired=1, queued=0, running=1)
    Alerting(ctx).tick()
    assert [kind for kind, _ in summaries(ctx)] == ["alert", "resolved"]
