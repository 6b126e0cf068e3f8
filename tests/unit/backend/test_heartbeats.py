"""Airflow's health endpoint read for its jobs' heartbeats, with the reason Hangar shows."""
from __future__ import annotations

from datetime import datetime, timezone

from hangar.backend.heartbeats import heartbeat_ages, unhealthy_reason

NOW = datetime(2026, 12, 7, 22, 0, 47, tzinfo=timezone.utc)
HEALTHY = {
    "metadatabase": {"status": "healthy"},
    "scheduler": {"status": "healthy", "latest_scheduler_heartbeat": "2026-12-07T22:00:45.100000+00:00"},
    "triggerer": {"status": "healthy", "latest_triggerer_heartbeat": "2026-12-07T22:00:44+00:00"},
    "dag_processor": {"status": None, "latest_dag_processor_heartbeat": None},  # Airflow 2 without one
}


def test_a_healthy_environment_has_no_reason_and_known_ages():
    assert unhealthy_reason(HEALTHY, stale_after=30, now=NOW) is None
    assert heartbeat_ages(HEALTHY, now=NOW) == {"scheduler": 1.9, "triggerer": 3.0}


def test_a_stale_scheduler_is_named_with_the_age_of_its_heartbeat():
    # Airflow still calls it healthy (its threshold covers a draining scheduler): Hangar's own threshold counts
    body = {**HEALTHY, "scheduler": {"status": "healthy", "latest_scheduler_heartbeat": "2026-12-07T22:00:00+00:00"}}
    assert unhealthy_reason(body, stale_after=30, now=NOW) == "scheduler heartbeat 47 s old"
    assert unhealthy_reason(body, stale_after=60, now=NOW) is None


def test_every_stale_job_and_the_database_are_named():
    body = {**HEALTHY, "triggerer": {"status": "unhealthy", "latest_triggerer_heartbeat": "2026-12-07T21:59:47Z"},
            "scheduler": {"status": "unhealthy", "latest_scheduler_heartbeat": "2026-12-07T22:00:00+00:00"}}
    assert unhealthy_reason(body, stale_after=30, now=NOW) == "scheduler heartbeat 47 s old; triggerer heartbeat 60 s old"
    assert unhealthy_reason({**body, "metadatabase": {"status": "unhealthy"}}, stale_after=30, now=NOW) == \
        "the metadata database is unhealthy"


def test_garbage_is_no_verdict():
    assert unhealthy_reason(None, stale_after=30) is None and unhealthy_reason({"scheduler": "x"}, stale_after=30) is None
    assert heartbeat_ages({"scheduler": {"latest_scheduler_heartbeat": "not a time"}}) == {}
