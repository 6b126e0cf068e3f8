"""The console's SVG charts as pure functions: downsampling keeps any window within its bound
and keeps a spike, a counter becomes a rate, axes get a few round ticks, and a chart says what
it shows to a screen reader and says "no samples yet" when it has nothing to draw."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from xml.etree import ElementTree

import pytest

from hangar.api.console import charts

START = datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc).timestamp()
NS = {"svg": "http://www.w3.org/2000/svg"}


def points(svg: str) -> list[list[tuple[float, float]]]:
    return [[tuple(map(float, pair.split(","))) for pair in found.split()]
            for found in re.findall(r'<polyline points="([^"]*)"', svg)]


@pytest.mark.parametrize("count, limit", [(60_480, 300), (8_640, 300), (301, 300), (1_000, 50), (10, 1)])
def test_downsampling_keeps_at_most_its_bound(count, limit):
    end = START + 10 * count
    times = [START + 10 * i for i in range(count)]
    kept_times, kept = charts.downsample(times, [float(i % 7) for i in range(count)], start=START, end=end,
                                         points=limit)
    assert 0 < len(kept) <= limit and len(kept_times) == len(kept)
    assert kept_times == sorted(kept_times) and kept_times[-1] == times[-1]  # the newest sample's time stays


def test_a_short_series_is_left_as_it_is_and_a_spike_survives():
    assert charts.downsample([START, START + 10], [1, 2], start=START, end=START + 3600) == ([START, START + 10], [1.0, 2.0])
    values = [1.0] * 10_000
    values[4321] = 99.0
    times = [START + i for i in range(10_000)]
    _, kept = charts.downsample(times, values, start=START, end=START + 10_000, points=100)
    assert max(kept) == 99.0 and len(kept) == 100
    _, means = charts.downsample(times, values, start=START, end=START + 10_000, points=100, how="mean")
    assert max(means) == pytest.approx(1 + 98 / 100)


def test_datetimes_are_taken_as_times():
    moments = [datetime.fromtimestamp(START + i, timezone.utc) for i in range(3)]
    assert charts.downsample(moments, [1, 2, 3], start=START, end=START + 3)[0] == [START, START + 1, START + 2]


def test_a_counter_becomes_its_rate_and_a_restart_is_skipped():
    times = [START, START + 10, START + 20, START + 30, START + 40]
    assert charts.rate(times, [0, 5, 15, 2, 4]) == ([START + 10, START + 20, START + 40], [0.5, 1.0, 0.2])
    assert charts.rate([START], [3]) == ([], [])


def test_a_line_says_its_raw_samples_not_its_downsampled_points():
    times = [START + i for i in range(1000)]
    values = [float(i % 10) for i in range(999)] + [4.0]
    item = charts.line("scheduler", times, values, start=START, end=START + 1000, points=20)
    assert len(item.values) <= 20 and item.latest == 4.0 and item.low == 0.0 and item.high == 9.0


@pytest.mark.parametrize("value, unit, top", [(0, "count", 1), (3, "count", 5), (7.2, "count", 10), (0.3, "cpu", 0.5),
                                              (130, "seconds", 200), (24, "count", 25),
                                              (300 * 1024 ** 2, "bytes", 500 * 1024 ** 2), (1.5 * 1024 ** 3, "bytes", 2 * 1024 ** 3)])
def test_the_value_axis_ends_on_a_round_number(value, unit, top):
    assert charts.nice_ceiling(value, unit) == pytest.approx(top)


def test_time_ticks_are_few_and_round():
    hour = charts.time_ticks(START, START + 3600)
    assert [label for _, label in hour] == ["10:00", "10:15", "10:30", "10:45", "11:00"]
    day = charts.time_ticks(START, START + 86400)
    assert len(day) <= 7 and all(label.endswith(":00") for _, label in day)
    week = charts.time_ticks(START, START + 7 * 86400)
    assert [label for _, label in week] == ["Dec 08", "Dec 09", "Dec 10", "Dec 11", "Dec 12", "Dec 13", "Dec 14"]


def test_a_chart_is_accessible_svg_with_its_lines_latest_and_range():
    times = [START + 10 * i for i in range(360)]
    queued = charts.line("queued", times, [float(i % 5) for i in range(360)], start=START, end=START + 3600)
    running = charts.line("running", times, [2.0] * 360, start=START, end=START + 3600)
    svg = charts.line_chart("Tasks queued and running", [queued, running], start=START, end=START + 3600,
                            unit="count", ident="chart-tasks")
    root = ElementTree.fromstring(svg)  # well-formed
    assert root.get("role") == "img" and root.get("aria-label") == "Tasks queued and running"
    assert root.get("aria-describedby") == "chart-tasks-desc"
    assert root.find("svg:title", NS).text == "Tasks queued and running"
    desc = root.find("svg:desc", NS).text
    assert "From 2026-12-07 10:00 UTC to 2026-12-07 11:00 UTC" in desc
    assert "queued: latest 4, lowest 0, highest 4" in desc and "running: latest 2, lowest 2, highest 2" in desc
    lines = points(svg)
    assert len(lines) == 2 and len(lines[0]) == charts.MAX_POINTS  # 360 samples, downsampled
    assert lines[0][0][0] == pytest.approx(charts.LEFT, abs=2) and lines[0][-1][0] == pytest.approx(charts.WIDTH - charts.RIGHT, abs=2)
    for label in ("10:00", "10:30", "11:00", ">0<", ">2.5<", ">5<"):
        assert label.strip("<>") in svg
    assert svg.count('class="latest"') == 2


def test_a_gap_in_the_samples_breaks_the_line():
    times = [START + 10 * i for i in range(50)] + [START + 2000 + 10 * i for i in range(50)]
    svg = charts.line_chart("Gap", [charts.line("x", times, [1.0] * 100, start=START, end=START + 3600)],
                            start=START, end=START + 3600)
    assert len(points(svg)) == 2


def test_values_read_in_their_units():
    memory = charts.line("scheduler", [START, START + 10], [200 * 1024 ** 2, 300 * 1024 ** 2], start=START, end=START + 60)
    svg = charts.line_chart("Memory", [memory], start=START, end=START + 60, unit="bytes")
    assert "scheduler: latest 300 MiB, lowest 200 MiB, highest 300 MiB" in svg
    cpu = charts.line("worker-1", [START, START + 10], [0.25, 1.5], start=START, end=START + 60)
    assert "latest 150%" in charts.line_chart("CPU", [cpu], start=START, end=START + 60, unit="cpu")
    age = charts.line("scheduler", [START], [400.0], start=START, end=START + 60)
    assert "latest 6.67 min" in charts.line_chart("Heartbeat", [age], start=START, end=START + 60, unit="seconds")


def test_a_label_is_escaped():
    item = charts.line("<b>", [START, START + 1], [1, 2], start=START, end=START + 60)
    svg = charts.line_chart("a & b", [item], start=START, end=START + 60)
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "a &amp; b" in svg
    ElementTree.fromstring(svg)


def test_with_no_samples_a_chart_says_so_instead_of_an_empty_box():
    empty = charts.line("queued", [], [], start=START, end=START + 3600)
    out = charts.line_chart("Tasks", [empty], start=START, end=START + 3600)
    assert "<svg" not in out and "no samples yet" in out
    assert "no samples yet" in charts.line_chart("Tasks", [], start=START, end=START + 3600)
    assert "tasks run in the scheduler" in charts.line_chart("Workers", [], start=START, end=START + 3600,
                                                              empty="tasks run in the scheduler")


def test_a_lone_sample_is_a_dot():
    svg = charts.line_chart("One", [charts.line("x", [START + 5], [3.0], start=START, end=START + 60)],
                            start=START, end=START + timedelta(minutes=1).total_seconds())
    assert points(svg) == [] and svg.count("<circle") == 2  # the sample, and the latest mark
