"""Airflow's StatsD names to Prometheus names and labels, as the official Airflow Helm chart's
statsd-exporter mappings (chart/files/statsd-mappings.yml) turn them; a name no mapping takes
gets statsd-exporter's default: every character Prometheus does not allow becomes "_".

A glob's `*` takes one dot-free part of the name; a regex must match the whole name.
"""
from __future__ import annotations

import re
from functools import lru_cache

# (match, is a regex, Prometheus name, labels with $n for the n-th part matched)
MAPPINGS: list[tuple[str, bool, str, dict[str, str]]] = [
    ("airflow.dagrun.dependency-check.*.*", False, "airflow_dagrun_dependency_check", {"dag_id": "$1"}),
    (r"airflow\.operator_successes_(.*)", True, "airflow_operator_successes", {"operator": "$1"}),
    (r"airflow\.operator_failures_(.*)", True, "airflow_operator_failures", {"operator": "$1"}),
    (r"airflow\.scheduler_heartbeat", True, "airflow_scheduler_heartbeat", {"type": "counter"}),
    ("airflow.dag.*.*.duration", False, "airflow_task_duration", {"dag_id": "$1", "task_id": "$2"}),
    ("airflow.dagrun.duration.success.*", False, "airflow_dagrun_duration", {"dag_id": "$1"}),
    ("airflow.dagrun.duration.failed.*", False, "airflow_dagrun_failed", {"dag_id": "$1"}),
    ("airflow.dagrun.schedule_delay.*", False, "airflow_dagrun_schedule_delay", {"dag_id": "$1"}),
    ("airflow.dag_processing.last_runtime.*", False, "airflow_dag_processing_last_runtime", {"dag_file": "$1"}),
    ("airflow.dag_processing.last_run.seconds_ago.*", False, "airflow_dag_processing_last_run_seconds_ago",
     {"dag_file": "$1"}),
    ("airflow.pool.open_slots.*", False, "airflow_pool_open_slots", {"pool": "$1"}),
    ("airflow.pool.used_slots.*", False, "airflow_pool_used_slots", {"pool": "$1"}),
    ("airflow.pool.starving_tasks.*", False, "airflow_pool_starving_tasks", {"pool": "$1"}),
    ("airflow.executor.open_slots.*", False, "airflow_executor_open_slots", {"executor": "$1"}),
    ("airflow.executor.queued_tasks.*", False, "airflow_executor_queued_tasks", {"executor": "$1"}),
    ("airflow.executor.running_tasks.*", False, "airflow_executor_running_tasks", {"executor": "$1"}),
]


def _compile(match: str, is_regex: bool) -> re.Pattern:
    if is_regex:
        return re.compile(match)
    return re.compile("".join("([^.]+)" if part == "*" else re.escape(part) for part in re.split(r"(\*)", match)))


_COMPILED = [(_compile(match, is_regex), name, labels) for match, is_regex, name, labels in MAPPINGS]
_NOT_ALLOWED = re.compile(r"[^a-zA-Z0-9_]")


@lru_cache(maxsize=8192)
def prometheus_name(statsd_name: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """(Prometheus name, sorted label pairs) for an Airflow StatsD name (with its "airflow." prefix)."""
    for pattern, name, labels in _COMPILED:
        match = pattern.fullmatch(statsd_name)
        if match:
            values = {key: re.sub(r"\$(\d+)", lambda m: match.group(int(m.group(1))), template)
                      for key, template in labels.items()}
            return name, tuple(sorted(values.items()))
    return _NOT_ALLOWED.sub("_", statsd_name), ()
