"""The embedded time series: every `metrics_sample_seconds` each live environment's series
(Hangar's own and Airflow's, as /metrics shows them) are kept as one row, and rows older than
`metrics_retention_days` go. `hangar env metrics` and the console's charts read them, with no
Prometheus needed.

Per-DAG series (dag_id, task_id, dag_file labels) are left to Prometheus, whose storage is made
for them; of a histogram or summary only the count is kept.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import timedelta

from prometheus_client.core import Metric

from hangar.context import Context
from hangar.store import metric_samples, repository
from hangar.store.models import utcnow

log = logging.getLogger(__name__)
PER_DAG_LABELS = frozenset({"dag_id", "task_id", "dag_file"})
MAX_SERIES = 500  # per environment per sample


def by_environment(families: Iterable[Metric]) -> dict[str, dict[str, float]]:
    """environment name -> series key -> value."""
    out: dict[str, dict[str, float]] = {}
    for family in families:
        for sample in family.samples:
            environment = sample.labels.get("environment")
            if not environment or PER_DAG_LABELS & sample.labels.keys():
                continue
            if sample.name.endswith(("_bucket", "_sum", "_created")):
                continue
            values = out.setdefault(environment, {})
            if len(values) < MAX_SERIES:
                labels = {k: v for k, v in sample.labels.items() if k != "environment"}
                values[metric_samples.series_key(sample.name, labels)] = sample.value
    return out


def sample(ctx: Context) -> None:
    now = utcnow()
    series = by_environment(ctx.telemetry.registry.collect())
    with ctx.store.session() as session:
        for env in repository.list_live(session):
            if env.name in series:
                metric_samples.add(session, env_id=env.id, at=now, values=series[env.name])
        metric_samples.prune(session, before=now - timedelta(days=ctx.settings.metrics_retention_days))


def loop(ctx: Context, *, stop: threading.Event) -> None:
    while not stop.wait(ctx.settings.metrics_sample_seconds):
        try:
            sample(ctx)
        except Exception:  # a failed round never stops the sampling
            log.exception("sampling metrics failed; trying again")
