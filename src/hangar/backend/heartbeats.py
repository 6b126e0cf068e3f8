"""Airflow's own signals on its jobs, from its health endpoint (/api/v2/monitor/health on
Airflow 3, /health on 2): the metadata database's status, and the scheduler's, triggerer's and
dag-processor's newest heartbeat in the metadata database.

A heartbeat older than Hangar's `heartbeat_stale_seconds` is stale. Airflow's own verdict on a
scheduler uses [scheduler] scheduler_health_check_threshold, which Hangar sets as long as a
replaced scheduler may drain (minutes), so it is not the one used. A job Airflow reports no
heartbeat for at all (never started, or not run by this environment) is not judged.
"""
from __future__ import annotations

from datetime import datetime, timezone

# the health endpoint's key -> (its heartbeat field, the name in a reason)
JOBS = {
    "scheduler": ("latest_scheduler_heartbeat", "scheduler"),
    "triggerer": ("latest_triggerer_heartbeat", "triggerer"),
    "dag_processor": ("latest_dag_processor_heartbeat", "dag-processor"),
}


def heartbeat_ages(body: object, *, now: datetime | None = None) -> dict[str, float]:
    """Seconds since each job's newest heartbeat, for the jobs that have one."""
    now = now or datetime.now(timezone.utc)
    ages = {}
    for key, (field, name) in JOBS.items():
        entry = body.get(key) if isinstance(body, dict) else None
        stamp = entry.get(field) if isinstance(entry, dict) else None
        if isinstance(stamp, str):
            try:
                moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            except ValueError:
                continue
            ages[name] = max(0.0, (now - (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc))).total_seconds())
    return ages


def unhealthy_reason(body: object, *, stale_after: float, now: datetime | None = None) -> str | None:
    """Why Airflow's jobs are unhealthy ("scheduler heartbeat 47 s old"), or None."""
    if not isinstance(body, dict):
        return None
    database = body.get("metadatabase")
    if isinstance(database, dict) and database.get("status") == "unhealthy":
        return "the metadata database is unhealthy"
    return "; ".join(f"{name} heartbeat {age:.0f} s old"
                     for name, age in heartbeat_ages(body, now=now).items() if age > stale_after) or None


def json_body(response) -> object:
    """A health endpoint's answer (an httpx.Response) as JSON; None if it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None
