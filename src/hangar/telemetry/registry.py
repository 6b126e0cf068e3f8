"""What the control plane exposes at /metrics: its own registry (several control planes may
share a process in tests, so never prometheus_client's global one), holding

- the environments' Airflow metrics (telemetry.airflow_metrics),
- Hangar's own per-environment series, collected at scrape time (hangar.domain.metrics),
- histograms the control plane observes as it works: API requests by route, reconciles by
  operation and outcome, runtime builds by outcome.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import Metric

from hangar.telemetry.airflow_metrics import AirflowMetrics

_SLOW_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)


class _Families:
    def __init__(self, source: Callable[[], Iterable[Metric]]) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        return self.source()


class Telemetry:
    def __init__(self, *, names: Callable[[str], str | None]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.airflow = AirflowMetrics(names=names)
        self.registry.register(_Families(self.airflow.families))
        self.api_latency = Histogram(
            "hangar_api_request_duration_seconds", "Control-plane API requests, by method and route",
            ["method", "route"], registry=self.registry)
        self.reconcile_duration = Histogram(
            "hangar_reconcile_duration_seconds", "Operations the reconciler ran, by kind and outcome",
            ["operation", "outcome"], buckets=_SLOW_BUCKETS, registry=self.registry)
        self.runtime_build_duration = Histogram(
            "hangar_runtime_build_duration_seconds", "Runtime (venv) builds, by outcome",
            ["outcome"], buckets=_SLOW_BUCKETS, registry=self.registry)

    def add_source(self, source: Callable[[], Iterable[Metric]]) -> None:
        """More series, made at each scrape by `source`."""
        self.registry.register(_Families(source))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
