"""Every environment's Airflow StatsD metrics, kept as Prometheus series with an `environment`
label, the way the Helm chart's statsd-exporter would show them (telemetry.mapping).

Counters add up (scaled by their sample rate), gauges keep their last value (or change by
"+n"/"-n"), timers become summaries in seconds (count and sum). One environment may hold at
most `max_series` series; past that its new series are dropped (its old ones still count), so
a DAG with endless task ids cannot exhaust the control plane's memory.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from prometheus_client.core import Metric

from hangar.telemetry.mapping import prometheus_name
from hangar.telemetry.statsd import Sample

Labels = tuple[tuple[str, str], ...]
_TYPES = {"c": "counter", "g": "gauge", "ms": "summary"}


class AirflowMetrics:
    def __init__(self, *, names: Callable[[str], str | None], max_series: int = 5000) -> None:
        self.names = names  # environment id -> its name; None for an id Hangar does not know
        self.max_series = max_series
        self._lock = threading.Lock()
        self._types: dict[str, str] = {}  # Prometheus name -> its type (the first one seen)
        # env_id -> (name, labels) -> value, or [count, sum] for a summary
        self._series: dict[str, dict[tuple[str, Labels], float | list[float]]] = {}

    def take(self, samples: list[Sample]) -> None:
        with self._lock:
            for sample in samples:
                kind = _TYPES.get(sample.kind)
                if kind is None or self.names(sample.env_id) is None:
                    continue
                name, labels = prometheus_name(sample.name)
                if self._types.setdefault(name, kind) != kind:
                    continue  # one name, one type
                series = self._series.setdefault(sample.env_id, {})
                key = (name, labels)
                if key not in series:
                    if len(series) >= self.max_series:
                        continue
                    series[key] = [0.0, 0.0] if kind == "summary" else 0.0
                if kind == "counter":
                    series[key] += sample.value / sample.rate
                elif kind == "gauge":
                    series[key] = series[key] + sample.value if sample.relative else sample.value
                else:
                    count_sum = series[key]
                    count_sum[0] += 1 / sample.rate
                    count_sum[1] += sample.value / 1000 / sample.rate

    def forget(self, env_id: str) -> None:
        with self._lock:
            self._series.pop(env_id, None)

    def values(self, env_id: str) -> dict[tuple[str, Labels], float]:
        """An environment's series now: counters and gauges as they are, a summary as its count."""
        with self._lock:
            return {key: value[0] if isinstance(value, list) else value
                    for key, value in self._series.get(env_id, {}).items()}

    def families(self) -> Iterator[Metric]:
        with self._lock:
            snapshot = {env_id: dict(series) for env_id, series in self._series.items()}
            types = dict(self._types)
        metrics: dict[str, Metric] = {}
        for env_id, series in snapshot.items():
            environment = self.names(env_id)
            if environment is None:  # deleted
                self.forget(env_id)
                continue
            for (name, labels), value in series.items():
                kind = types[name]
                metric = metrics.setdefault(name, Metric(name, f"Airflow's {name} (StatsD)", kind))
                tags = {"environment": environment, **dict(labels)}
                if kind == "counter":
                    metric.add_sample(f"{name}_total", tags, value)
                elif kind == "gauge":
                    metric.add_sample(name, tags, value)
                else:
                    metric.add_sample(f"{name}_count", tags, value[0])
                    metric.add_sample(f"{name}_sum", tags, value[1])
        yield from metrics.values()
