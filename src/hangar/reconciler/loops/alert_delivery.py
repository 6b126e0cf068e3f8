"""Alert delivery: every pending delivery that is due is sent (hangar.runtime.notify), a few
at once so that one slow target does not hold up the rest. A failure is recorded on the
delivery (its attempts and last error) and retried after a backoff that doubles from
`alert_retry_seconds`, up to `alert_delivery_attempts` attempts; then the delivery is failed.
Nothing a target does can stop the loop or reach the control plane's other work.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from hangar.context import Context
from hangar.domain.alerts import get_smtp
from hangar.runtime import notify
from hangar.store import alerts as store
from hangar.store.alert_models import AlertDeliveryRow, AlertRuleRow
from hangar.store.models import utcnow

log = logging.getLogger(__name__)
AT_ONCE = 4


def _send(ctx: Context, job: dict) -> str | None:
    """None when delivered, else why not."""
    try:
        if job["kind"] == "webhook":
            notify.send_webhook(job["target"], job["payload"], secret=job["secret"], delivery_id=job["id"])
        elif job["kind"] == "slack":
            notify.send_slack(job["target"], job["payload"])
        else:
            smtp = get_smtp(ctx)
            if smtp is None:
                return "no SMTP server is set (hangar alert smtp --host ...)"
            notify.send_email(host=smtp.host, port=smtp.port, starttls=smtp.starttls, user=smtp.user,
                              password=smtp.password, sender=smtp.sender, to=job["target"], notice=job["payload"])
    except notify.DeliveryFailed as exc:
        return str(exc)
    except Exception as exc:  # whatever else a target does: recorded, never raised
        return f"{type(exc).__name__}"
    return None


def deliver_due(ctx: Context, pool: ThreadPoolExecutor) -> int:
    now = utcnow()
    with ctx.store.session() as session:
        jobs = []
        for row in store.due_deliveries(session, now):
            rule = session.get(AlertRuleRow, row.rule_id)
            target, secret = store.rule_secrets(ctx.envelope, rule)
            jobs.append({"id": row.id, "kind": rule.kind, "target": target, "secret": secret, "payload": row.payload})
    if not jobs:
        return 0
    outcomes = list(pool.map(lambda job: _send(ctx, job), jobs))
    settings = ctx.settings
    with ctx.store.session() as session:
        for job, error in zip(jobs, outcomes):
            row = session.get(AlertDeliveryRow, job["id"])
            if row is None:  # its rule was deleted meanwhile
                continue
            row.attempts += 1
            if error is None:
                row.state, row.delivered_at, row.last_error = "delivered", utcnow(), None
                continue
            row.last_error = error[:500]
            if row.attempts >= settings.alert_delivery_attempts:
                row.state = "failed"
                log.warning("alert delivery %s failed for good after %d attempts: %s", row.id, row.attempts, error)
            else:
                delay = settings.alert_retry_seconds * 2 ** (row.attempts - 1)
                row.next_attempt_at = utcnow() + timedelta(seconds=min(delay, 3600))
    return len(jobs)


def loop(ctx: Context, *, stop: threading.Event) -> None:
    with ThreadPoolExecutor(max_workers=AT_ONCE, thread_name_prefix="hangar-alert-send") as pool:
        while not stop.wait(ctx.settings.alert_interval / 2):
            try:
                deliver_due(ctx, pool)
            except Exception:
                log.exception("alert delivery failed; trying again")
