"""What each alert event looks at, and whether it holds now in one environment.

A check answers {key: summary} for every incident it finds now (a key names what the incident
is about: a status, a DAG, "queued"), or None when it cannot tell (the web server does not
answer, the metadata database is out of reach): then open incidents stay as they are.

Airflow's own records are read: the metadata database's dag_run, task_instance and import_error
tables, and the job heartbeats its health endpoint reports. A task waiting for a pool slot is
"scheduled", not "queued", in Airflow; both count as queued here, as a user of MWAA counts them.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from hangar.backend.heartbeats import heartbeat_ages
from hangar.domain.status import Status
from hangar.schemas.alerts import AlertEvent
from hangar.store import worker_samples
from hangar.store.alert_models import AlertRuleRow
from hangar.store.models import EnvironmentRow, WorkerSampleRow

ALERTING_STATUSES = (Status.UNAVAILABLE, Status.CREATE_FAILED, Status.UPDATE_FAILED, Status.ROLLING_BACK)
SHOWN = 5  # task instances named in a summary


@dataclass(frozen=True)
class Seen:
    """One environment as the evaluator sees it in one round."""

    env: EnvironmentRow
    major: int
    celery_max: int | None
    airflow_health: object  # the web server's last health answer (None: no answer)
    cursor: object  # a cursor on its metadata database, or None


def _ti(row) -> str:
    dag_id, task_id, run_id, map_index = row[:4]
    return f"{dag_id}.{task_id}{f'[{map_index}]' if map_index is not None and map_index >= 0 else ''} ({run_id})"


def _tasks(seen: Seen, sql: str, minutes: float, what: str) -> dict[str, str] | None:
    if seen.cursor is None:
        return None
    seen.cursor.execute(sql, (minutes * 60,))
    rows = seen.cursor.fetchall()
    if not rows:
        return {}
    named = ", ".join(_ti(row) for row in rows[:SHOWN]) + (f" and {len(rows) - SHOWN} more" if len(rows) > SHOWN else "")
    return {what: f"{len(rows)} task instance(s) {what} longer than {minutes:g} min: {named}"}


def queued_too_long(seen: Seen, minutes: float) -> dict[str, str] | None:
    waiting_since = "ti.scheduled_dttm" if seen.major >= 3 else "dr.start_date"
    return _tasks(seen, (
        "SELECT ti.dag_id, ti.task_id, ti.run_id, ti.map_index FROM task_instance ti "
        "JOIN dag_run dr ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id "
        f"WHERE ti.state IN ('queued', 'scheduled') AND CASE WHEN ti.state = 'queued' THEN ti.queued_dttm "
        f"ELSE {waiting_since} END < now() - make_interval(secs => %s) ORDER BY ti.dag_id, ti.task_id LIMIT 1000"),
        minutes, "queued")


def running_too_long(seen: Seen, minutes: float) -> dict[str, str] | None:
    return _tasks(seen, (
        "SELECT dag_id, task_id, run_id, map_index FROM task_instance WHERE state = 'running' "
        "AND start_date < now() - make_interval(secs => %s) ORDER BY dag_id, task_id LIMIT 1000"), minutes, "running")


def dag_runs_failed(seen: Seen, rule: AlertRuleRow) -> dict[str, str] | None:
    """Each DAG whose newest finished run failed after the rule was made: open until a run succeeds."""
    if seen.cursor is None:
        return None
    seen.cursor.execute(
        "SELECT DISTINCT ON (dag_id) dag_id, run_id, state, end_date FROM dag_run "
        "WHERE state IN ('success', 'failed') AND end_date IS NOT NULL AND (%s::text IS NULL OR dag_id = %s) "
        "ORDER BY dag_id, end_date DESC", (rule.dag_id, rule.dag_id))
    return {f"dag:{dag_id}": f"DAG {dag_id} run {run_id} failed at {end_date.isoformat()}"
            for dag_id, run_id, state, end_date in seen.cursor.fetchall()
            if state == "failed" and end_date > rule.created_at}


def import_errors(seen: Seen) -> dict[str, str] | None:
    if seen.cursor is None:
        return None
    seen.cursor.execute("SELECT filename FROM import_error ORDER BY filename")
    files = [row[0] for row in seen.cursor.fetchall()]
    return {"import_errors": f"{len(files)} DAG file(s) fail to import: {', '.join(files[:SHOWN])}"} if files else {}


def heartbeat_missing(seen: Seen, seconds: float) -> dict[str, str] | None:
    if seen.airflow_health is None:
        return None
    age = heartbeat_ages(seen.airflow_health).get("scheduler")
    if age is None or age <= seconds:
        return {}
    return {"scheduler": f"no scheduler heartbeat for {age:.0f} s (threshold {seconds:g} s)"}


def at_max(session, seen: Seen, minutes: float, now: datetime) -> dict[str, str]:
    """Workers at max_workers all the last `minutes` (the autoscaler's readings)."""
    latest = worker_samples.latest(session, seen.env.id)
    if seen.celery_max is None or latest is None or latest.current < seen.celery_max:
        return {}
    below = session.query(WorkerSampleRow.at).filter(WorkerSampleRow.environment_id == seen.env.id,
                                                     WorkerSampleRow.current < seen.celery_max)
    since = below.order_by(WorkerSampleRow.at.desc()).limit(1).scalar()
    if since is None:
        since = session.query(WorkerSampleRow.at).filter(WorkerSampleRow.environment_id == seen.env.id) \
            .order_by(WorkerSampleRow.at).limit(1).scalar()
    if since is None or now - since < timedelta(minutes=minutes):
        return {}
    return {"workers": f"workers at max ({seen.celery_max}) since {since.isoformat()}"}


def holds(session, rule: AlertRuleRow, seen: Seen, now: datetime) -> dict[str, str] | None:
    env, event = seen.env, AlertEvent(rule.event)
    threshold = rule.threshold or 0.0
    if event == AlertEvent.status_changed:
        return {f"status:{env.status}": f"{env.name} is {env.status}: {env.status_reason or ''}".rstrip(": ")} \
            if env.status in ALERTING_STATUSES else {}
    if event == AlertEvent.update_failed:
        if env.last_update_status != "FAILED":
            return {}
        message = (env.last_update_error_message or "").strip().splitlines()[:1]
        return {f"update:{env.last_update_revision}": f"the update to revision {env.last_update_revision} failed: "
                f"{env.last_update_error_code}: {message[0][:300] if message else ''}"}
    if event == AlertEvent.scheduler_heartbeat_missing:
        return heartbeat_missing(seen, threshold)
    if event == AlertEvent.task_queued_too_long:
        return queued_too_long(seen, threshold)
    if event == AlertEvent.task_running_too_long:
        return running_too_long(seen, threshold)
    if event == AlertEvent.dag_run_failed:
        return dag_runs_failed(seen, rule)
    if event == AlertEvent.dag_import_errors:
        return import_errors(seen)
    return at_max(session, seen, threshold, now)
