"""The metrics page over HTTP with samples written through the store: charts of Hangar's own
series as SVG polylines, the 1 h / 24 h / 7 d ranges, an unknown range refused, "no samples yet"
for a chart with nothing, and a week of samples drawn with a bounded number of points."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from hangar.api.console import charts
from hangar.domain.access import Role
from hangar.store import metric_samples, repository
from hangar.store.models import utcnow
from tests.unit.domain.test_workers import make_env

URL = "/console/environments/sales/metrics"
CHARTS = ("heartbeat", "tasks", "workers", "cpu", "memory")
MIB = 1024 ** 2


def key(name: str, **labels: str) -> str:
    return metric_samples.series_key(name, labels)


def sample(i: int) -> dict[str, float]:
    return {
        key("hangar_airflow_heartbeat_age_seconds", job="scheduler"): 2.0 + i % 3,
        key("hangar_airflow_heartbeat_age_seconds", job="triggerer"): 4.0,
        key("hangar_tasks_queued"): float(i % 4), key("hangar_tasks_running"): 2.0,
        key("hangar_workers_current"): 1.0, key("hangar_workers_desired"): 2.0,
        key("hangar_component_cpu_seconds_total", component="scheduler"): 5.0 * i,  # half a core
        key("hangar_component_cpu_seconds_total", component="worker-1"): 1.0 * i,
        key("hangar_component_memory_bytes", component="scheduler"): 300.0 * MIB,
        key("hangar_component_memory_bytes", component="worker-1"): 200.0 * MIB,
        key("airflow_pool_open_slots", pool="default_pool"): 16.0,  # not charted
    }


@pytest.fixture
def env_id(ctx, tmp_path):
    make_env(ctx, tmp_path, "sales", executor="celery")
    with ctx.store.session() as session:
        return repository.get_live(session, "sales").id


def write(ctx, env_id, *, count: int, every: timedelta) -> None:
    """`count` samples `every` apart, the newest a moment ago."""
    now = utcnow()
    with ctx.store.session() as session:
        for i in range(count):
            metric_samples.add(session, env_id=env_id, at=now - every * (count - i) + timedelta(seconds=1), values=sample(i))


def figure(html: str, ident: str) -> str:
    return re.search(rf'<figure class="chart" id="{ident}".*?</figure>', html, re.S)[0]


def polylines(html: str) -> list[int]:
    """How many points each polyline has."""
    return [len(found.split()) for found in re.findall(r'<polyline points="([^"]*)"', html)]


def test_the_charts_are_drawn_from_the_samples(ctx, signed_in, env_id):
    write(ctx, env_id, count=60, every=timedelta(seconds=10))
    answer = signed_in(Role.Viewer).get(URL)
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    text = answer.text
    assert '<a href="/console/environments/sales/metrics" aria-current="page">Metrics</a>' in text
    heartbeat = figure(text, "heartbeat")
    assert 'role="img"' in heartbeat and 'aria-label="Airflow heartbeat age (scheduler and other jobs)"' in heartbeat
    assert polylines(heartbeat) == [60, 60]
    assert heartbeat.index('data-series="scheduler"') < heartbeat.index('data-series="triggerer"')
    assert "scheduler: latest 4 s, lowest 2 s, highest 4 s" in heartbeat
    tasks = figure(text, "tasks")
    assert polylines(tasks) == [60, 60] and "queued: latest 3" in tasks and "running: latest 2" in tasks
    workers = figure(text, "workers")
    assert "current: latest 1, lowest 1, highest 1" in workers and "desired: latest 2" in workers
    cpu = figure(text, "cpu")
    assert polylines(cpu) == [59, 59]  # a rate between samples
    assert "scheduler: latest 50%, lowest 50%, highest 50%" in cpu and "worker-1: latest 10%" in cpu
    memory = figure(text, "memory")
    assert "scheduler: latest 300 MiB" in memory and "worker-1: latest 200 MiB" in memory
    assert "airflow_pool" not in text and "default_pool" not in text
    assert "no samples yet" not in text


@pytest.mark.parametrize("span", ["1h", "24h", "7d"])
def test_each_range_is_linked_and_the_chosen_one_marked(signed_in, env_id, span):
    answer = signed_in(Role.Viewer).get(URL, params={"range": span})
    assert answer.status_code == 200
    links = dict(re.findall(r'<a href="/console/environments/sales/metrics\?range=(\w+)"[^>]*?( aria-current="page")?>', answer.text))
    assert set(links) == {"1h", "24h", "7d"} and [k for k, current in links.items() if current] == [span]


def test_a_range_holds_only_its_window(ctx, signed_in, env_id):
    write(ctx, env_id, count=30, every=timedelta(minutes=5))  # two and a half hours
    client = signed_in(Role.Viewer)
    assert polylines(figure(client.get(URL, params={"range": "1h"}).text, "tasks")) == [12, 12]
    assert polylines(figure(client.get(URL, params={"range": "24h"}).text, "tasks")) == [30, 30]
    assert polylines(figure(client.get(URL).text, "tasks")) == [12, 12]  # 1 h unless asked


def test_an_unknown_range_is_refused_with_a_message(signed_in, env_id):
    answer = signed_in(Role.Viewer).get(URL, params={"range": "2h"})
    assert answer.status_code == 400
    assert "range &#39;2h&#39; is not one of 1h, 24h, 7d" in answer.text and 'role="alert"' in answer.text
    assert "<svg" not in answer.text and 'href="/console/environments/sales/metrics?range=24h"' in answer.text


def test_with_no_samples_yet_each_chart_says_so(signed_in, env_id):
    text = signed_in(Role.Viewer).get(URL).text
    for ident in CHARTS:
        chart = figure(text, ident)
        assert "no samples yet" in chart and "<svg" not in chart


def test_a_chart_with_no_samples_of_its_own_says_so_beside_the_others(ctx, signed_in, tmp_path):
    make_env(ctx, tmp_path, "local", executor="local")
    with ctx.store.session() as session:
        env_id = repository.get_live(session, "local").id
        metric_samples.add(session, env_id=env_id, at=utcnow() - timedelta(seconds=5),
                           values={key("hangar_tasks_queued"): 1.0, key("hangar_tasks_running"): 0.0})
    text = signed_in(Role.Viewer).get("/console/environments/local/metrics").text
    assert "<svg" in figure(text, "tasks")
    assert "runs tasks without Celery workers" in figure(text, "workers")
    assert "no samples yet" in figure(text, "heartbeat")


def test_a_week_of_samples_is_drawn_with_a_bounded_number_of_points(ctx, signed_in, env_id):
    write(ctx, env_id, count=4000, every=timedelta(minutes=2.5))  # just short of a week
    text = signed_in(Role.Viewer).get(URL, params={"range": "7d"}).text
    counts = polylines(text)
    assert counts and max(counts) <= charts.MAX_POINTS
    assert sum(counts) >= 9 * charts.MAX_POINTS * 0.9  # nine lines, each near the bound
    assert "queued: latest 3" in figure(text, "tasks")  # the newest sample is read


def test_a_missing_environment_is_the_404_page(signed_in, env_id):
    for params in ({}, {"range": "2h"}):
        answer = signed_in(Role.Viewer).get("/console/environments/nope/metrics", params=params)
        assert answer.status_code == 404 and "<h1>Not found</h1>" in answer.text
