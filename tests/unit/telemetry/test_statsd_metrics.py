"""Airflow's StatsD lines to Prometheus series: parsing, the Helm chart's mappings, counters,
gauges and timers per environment, a bound on series, and a real UDP receiver."""
from __future__ import annotations

import socket
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from hangar.telemetry.airflow_metrics import AirflowMetrics
from hangar.telemetry.mapping import prometheus_name
from hangar.telemetry.registry import Telemetry
from hangar.telemetry.statsd import Sample, StatsdReceiver, parse_line, parse_packet

ENV = "0db6b3aa-d03d-425e-a924-7d0eb42c4339"
NAMES = {ENV: "sales", "e2": "ops"}


@pytest.mark.parametrize("line, expected", [
    (f"airflow.{ENV}.scheduler_heartbeat:1|c", Sample(ENV, "airflow.scheduler_heartbeat", 1.0, "c")),
    (f"airflow.{ENV}.executor.queued_tasks:3|g", Sample(ENV, "airflow.executor.queued_tasks", 3.0, "g")),
    (f"airflow.{ENV}.pool.open_slots.default_pool:-2|g",
     Sample(ENV, "airflow.pool.open_slots.default_pool", -2.0, "g", relative=True)),
    (f"airflow.{ENV}.dag.d.t.duration:1500|ms|@0.5", Sample(ENV, "airflow.dag.d.t.duration", 1500.0, "ms", rate=0.5)),
    (f"airflow.{ENV}.x:2|h|#tag:a", Sample(ENV, "airflow.x", 2.0, "ms")),
])
def test_lines_are_parsed(line, expected):
    assert parse_line(line) == expected


@pytest.mark.parametrize("line", ["nonsense", "airflow.only:1|c", f"other.{ENV}.x:1|c", f"airflow.{ENV}.x:abc|c",
                                  f"airflow.{ENV}.x:1|zz", f"airflow.{ENV}.x:1"])
def test_junk_is_dropped(line):
    assert parse_line(line) is None


def test_the_helm_charts_mappings_and_the_default():
    assert prometheus_name("airflow.dag.etl.load.duration") == ("airflow_task_duration", (("dag_id", "etl"), ("task_id", "load")))
    assert prometheus_name("airflow.scheduler_heartbeat") == ("airflow_scheduler_heartbeat", (("type", "counter"),))
    assert prometheus_name("airflow.operator_failures_BashOperator") == ("airflow_operator_failures",
                                                                          (("operator", "BashOperator"),))
    assert prometheus_name("airflow.pool.open_slots.default_pool") == ("airflow_pool_open_slots", (("pool", "default_pool"),))
    assert prometheus_name("airflow.executor.queued_tasks") == ("airflow_executor_queued_tasks", ())
    assert prometheus_name("airflow.dag_processing.import-errors") == ("airflow_dag_processing_import_errors", ())


def text(metrics: AirflowMetrics) -> str:
    registry = CollectorRegistry()

    class Source:
        def collect(self):
            return metrics.families()

    registry.register(Source())
    return generate_latest(registry).decode()


def test_counters_gauges_and_timers_per_environment():
    metrics = AirflowMetrics(names=NAMES.get)
    metrics.take(parse_packet("\n".join([
        f"airflow.{ENV}.scheduler_heartbeat:1|c", f"airflow.{ENV}.scheduler_heartbeat:1|c",
        f"airflow.{ENV}.executor.queued_tasks:4|g", f"airflow.{ENV}.executor.queued_tasks:-1|g",
        f"airflow.{ENV}.dag.etl.load.duration:1500|ms", f"airflow.{ENV}.dag.etl.load.duration:500|ms",
        "airflow.e2.scheduler_heartbeat:1|c@0.5".replace("c@", "c|@"),
        "airflow.unknown-env.scheduler_heartbeat:1|c",
    ]).encode()))
    out = text(metrics)
    assert 'airflow_scheduler_heartbeat_total{environment="sales",type="counter"} 2.0' in out
    assert 'airflow_scheduler_heartbeat_total{environment="ops",type="counter"} 2.0' in out  # scaled by its rate
    assert 'airflow_executor_queued_tasks{environment="sales"} 3.0' in out
    assert 'airflow_task_duration_count{dag_id="etl",environment="sales",task_id="load"} 2.0' in out
    assert 'airflow_task_duration_sum{dag_id="etl",environment="sales",task_id="load"} 2.0' in out
    assert "unknown" not in out


def test_one_environment_cannot_make_endless_series():
    metrics = AirflowMetrics(names=NAMES.get, max_series=10)
    metrics.take([Sample(ENV, f"airflow.dag.d.task{i}.duration", 1.0, "ms") for i in range(50)])
    metrics.take([Sample("e2", "airflow.scheduler_heartbeat", 1.0, "c")])
    assert len(metrics.values(ENV)) == 10 and len(metrics.values("e2")) == 1


def test_a_deleted_environments_series_go():
    names = dict(NAMES)
    metrics = AirflowMetrics(names=names.get)
    metrics.take([Sample(ENV, "airflow.scheduler_heartbeat", 1.0, "c")])
    del names[ENV]
    assert "sales" not in text(metrics) and metrics.values(ENV) == {}


def test_the_receiver_takes_real_udp_packets():
    telemetry = Telemetry(names=NAMES.get)
    receiver = StatsdReceiver(port=0, sink=telemetry.airflow.take)
    receiver.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"garbage\n\xff\xfe", ("127.0.0.1", receiver.port))
            sender.sendto(f"airflow.{ENV}.scheduler_heartbeat:1|c".encode(), ("127.0.0.1", receiver.port))
        deadline = time.monotonic() + 10
        while not telemetry.airflow.values(ENV) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        receiver.close()
    assert 'airflow_scheduler_heartbeat_total{environment="sales",type="counter"} 1.0' in telemetry.exposition().decode()
