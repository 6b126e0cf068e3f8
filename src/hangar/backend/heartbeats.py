"""Airflow's own verdict on its jobs, from its health endpoint (/api/v2/monitor/health on
Airflow 3, /health on 2): the metadata database, and the scheduler, triggerer and dag-processor
heartbeats, each judged by Airflow against its configured threshold
([scheduler] scheduler_health_check_threshold and its triggerer and dag-processor peers).

Hangar adds only the reason: which job, and how old its newest heartbeat is. A job Airflow
reports no heartbeat for at all (never started, or not run by this environment) is not judged.
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


def unhealthy_reason(body: object, *, now: datetime | None = None) -> str | None:
    """Why Airflow calls itself unhealthy ("scheduler heartbeat 47 s old"), or None."""
    if not isinstance(body, dict):
        return None
    database = body.get("metadatabase")
    if isinstance(database, dict) and database.get("status") == "unhealthy":
        return "the metadata database is unhealthy"
    ages = heartbeat_ages(body, now=now)
    reasons = []
    for key, (_, name) in JOBS.items():
        entry = body.get(key)
        if isinstance(entry, dict) and entry.get("status") == "unhealthy" and name in ages:
            reasons.append(f"{name} heartbeat {ages[name]:.0f} s old")
    return "; ".join(reasons) or None


def verdict(response) -> str | None:
    """unhealthy_reason of a health endpoint's answer (an httpx.Response); None if it is not JSON."""
    try:
        body = response.json()
    except ValueError:
        return None
    return unhealthy_reason(body)
