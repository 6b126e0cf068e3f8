"""Raw output to stamped lines: each prefix Airflow, gunicorn, Celery and Python print is read
for its time and level; lines without one continue the record before them."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from hangar.logstore.lines import LineReader, head

NOW = datetime(2026, 12, 7, 22, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("line, expected", [
    ("2026-12-07T21:52:14.158179Z [warning  ] Auth manager [airflow.x] loc=a.py:1",
     ("2026-12-07T21:52:14.158179Z", "WARNING", "Auth manager [airflow.x] loc=a.py:1")),
    ("[2026-12-07T21:52:14.158+0000] {scheduler_job_runner.py:12} ERROR - boom",
     ("2026-12-07T21:52:14.158000Z", "ERROR", "{scheduler_job_runner.py:12} boom")),
    ("[2026-12-07 21:52:14 +0000] [123] [INFO] Booting worker",
     ("2026-12-07T21:52:14.000000Z", "INFO", "Booting worker")),
    ("[2026-12-07 21:52:14,123: WARNING/MainProcess] celery@w ready.",
     ("2026-12-07T21:52:14.123000Z", "WARNING", "celery@w ready.")),
    ("2026-12-07 23:52:14,123+02:00 CRITICAL down", ("2026-12-07T21:52:14.123000Z", "CRITICAL", "down")),
])
def test_each_known_prefix_gives_utc_time_level_and_text(line, expected):
    assert head(line) == expected


@pytest.mark.parametrize("line", ["Traceback (most recent call last):", "  ____  banner", "[not a time] INFO - x",
                                  "2026-12-07T21:52:14Z [nolevel] x"])
def test_lines_without_a_prefix_have_none(line):
    assert head(line) is None


def test_continuation_lines_take_the_record_before_them():
    reader = LineReader()
    out = reader.stamp(["banner", "2026-12-07T21:52:14.000001Z [error    ] failed", "Traceback:", "  x"], now=NOW)
    assert out == [
        ("2026-12-07T22:00:00.000000Z", "INFO", "banner"),  # nothing before it: read time, INFO
        ("2026-12-07T21:52:14.000001Z", "ERROR", "failed"),
        ("2026-12-07T21:52:14.000001Z", "ERROR", "Traceback:"),
        ("2026-12-07T21:52:14.000001Z", "ERROR", "  x"),
    ]
    # read later: the level goes on, the time is the time it was read
    later = datetime(2026, 12, 7, 22, 5, tzinfo=timezone.utc)
    assert reader.stamp(["  more"], now=later) == [("2026-12-07T22:05:00.000000Z", "ERROR", "  more")]
