"""The embedded time series: samples of every environment's series, read back by name over the
last minutes, per-DAG series left to Prometheus, unknown names refused, old samples pruned."""
from __future__ import annotations

from datetime import timedelta

import pytest

from hangar.domain.metric_history import metric_history
from hangar.errors import ValidationFailed
from hangar.reconciler.loops import metric_sampling
from hangar.store import metric_samples, repository
from hangar.store.models import MetricSampleRow, utcnow
from hangar.telemetry.registry import Telemetry
from hangar.telemetry.statsd import Sample
from tests.unit.domain.test_workers import make_env


@pytest.fixture
def env_id(ctx, tmp_path):
    make_env(ctx, tmp_path, "sales", executor="local")
    with ctx.store.session() as session:
        env_id = repository.get_live(session, "sales").id
    ctx.telemetry = Telemetry(names={env_id: "sales"}.get)
    return env_id


def test_samples_are_read_back_by_name(ctx, env_id):
    airflow = ctx.telemetry.airflow
    airflow.take([Sample(env_id, "airflow.executor.queued_tasks", 3, "g"),
                  Sample(env_id, "airflow.pool.open_slots.default_pool", 16, "g"),
                  Sample(env_id, "airflow.dag.etl.load.duration", 1200, "ms")])
    metric_sampling.sample(ctx)
    airflow.take([Sample(env_id, "airflow.executor.queued_tasks", 5, "g")])
    metric_sampling.sample(ctx)
    (queued,) = metric_history(ctx, name="sales", names=["airflow_executor_queued_tasks"], minutes=5)
    assert queued.labels == {} and [value for _, value in queued.points] == [3, 5]
    (pool,) = metric_history(ctx, name="sales", names=["airflow_pool_open_slots"], minutes=5)
    assert pool.labels == {"pool": "default_pool"}
    every = {s.name for s in metric_history(ctx, name="sales", names=[], minutes=5)}
    assert "airflow_task_duration_count" not in every  # per-DAG series are Prometheus's to keep


def test_an_unknown_name_is_refused_with_the_names_there_are(ctx, env_id):
    ctx.telemetry.airflow.take([Sample(env_id, "airflow.executor.queued_tasks", 3, "g")])
    metric_sampling.sample(ctx)
    with pytest.raises(ValidationFailed, match="unknown metric 'airflow_nope' for 'sales': it has airflow_executor_queued_tasks"):
        metric_history(ctx, name="sales", names=["airflow_nope"], minutes=5)
    # unless a chart asks, which draws it empty
    assert metric_history(ctx, name="sales", names=["airflow_nope"], minutes=5, missing_ok=True) == []


def test_a_long_window_is_read_spread_evenly_up_to_now(ctx, env_id):
    """More samples than asked for: some of them, from the first to the newest, not the oldest
    ones only (a 7-day window holds 60,480 at the default 10 s)."""
    now = utcnow()
    with ctx.store.session() as session:
        for i in range(1000):  # one a minute, the newest now
            metric_samples.add(session, env_id=env_id, at=now - timedelta(minutes=999 - i), values={"x": float(i)})
    (every,) = metric_history(ctx, name="sales", names=["x"], minutes=1000)
    assert [value for _, value in every.points] == [float(i) for i in range(1000)]
    (spread,) = metric_history(ctx, name="sales", names=["x"], minutes=1000, samples=100)
    values = [value for _, value in spread.points]
    assert len(values) == 100 and values[0] == 0.0 and values[-1] == 999.0
    steps = {b - a for a, b in zip(values, values[1:])}
    assert steps <= {10.0, 11.0}  # evenly
    assert [v for _, v in metric_history(ctx, name="sales", names=["x"], minutes=1000, samples=1)[0].points] == [999.0]


def test_old_samples_are_pruned(ctx, env_id):
    with ctx.store.session() as session:
        metric_samples.add(session, env_id=env_id, at=utcnow() - timedelta(days=16), values={"x": 1.0})
    ctx.telemetry.airflow.take([Sample(env_id, "airflow.executor.queued_tasks", 3, "g")])
    metric_sampling.sample(ctx)
    with ctx.store.session() as session:
        assert [row.values for row in session.query(MetricSampleRow)] == [{"airflow_executor_queued_tasks": 3.0}]
