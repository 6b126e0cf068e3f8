"""Airflow's task log answers, both versions', as the text `hangar env task-logs` prints."""
from __future__ import annotations

from hangar.domain.task_logs import _text


def test_airflow_3_structured_entries_become_lines():
    content = [
        {"event": "::group::Log message source details", "sources": ["/logs/attempt=1.log"]},
        {"timestamp": "2026-12-07T22:00:00.1Z", "level": "info", "event": "slow: try 2 begins", "logger": "task.stdout"},
        {"timestamp": "2026-12-07T22:00:01Z", "level": "error", "event": "Task failed", "error_detail": "boom"},
    ]
    assert _text(content).splitlines() == [
        "::group::Log message source details sources=['/logs/attempt=1.log']",
        "2026-12-07T22:00:00.1Z info slow: try 2 begins",
        "2026-12-07T22:00:01Z error Task failed error_detail=boom",
    ]


def test_airflow_2_text_and_odd_answers():
    assert _text("[2026-12-07] {x.py:1} INFO - hi\n") == "[2026-12-07] {x.py:1} INFO - hi\n"
    assert _text(["plain line", 3]) == "plain line\n3"
    assert _text(None) == ""
