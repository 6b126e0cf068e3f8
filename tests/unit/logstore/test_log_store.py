"""The log store: queries by component, level, time and text; rotation by size; the bounds
that keep one environment's logs from filling the disk; followers that miss nothing."""
from __future__ import annotations

import os
import threading
import time

import pytest

from hangar.logstore.store import LogQuery, LogStore


def stamp(second: int) -> str:
    return f"2026-12-07T10:{second // 60:02d}:{second % 60:02d}.000000Z"


@pytest.fixture
def store(tmp_path):
    return LogStore(tmp_path / "logs", segment_bytes=10_000, max_bytes=1_000_000, retention_days=30)


def fill(store, env="e1"):
    store.append(env, "scheduler", [(stamp(1), "INFO", "scheduler started"), (stamp(4), "ERROR", "task failed: boom")])
    store.append(env, "worker-1", [(stamp(2), "DEBUG", "polling"), (stamp(3), "WARNING", "slow task")])
    store.append(env, "worker-2", [(stamp(5), "INFO", "task done")])


def messages(lines):
    return [line.message for line in lines]


def test_lines_of_all_components_come_back_in_time_order(store):
    fill(store)
    lines, cursor = store.query("e1", LogQuery())
    assert messages(lines) == ["scheduler started", "polling", "slow task", "task failed: boom", "task done"]
    assert [line.component for line in lines][:2] == ["scheduler", "worker-1"] and cursor == 5


def test_filters_by_component_level_time_and_text(store):
    fill(store)
    assert messages(store.query("e1", LogQuery(components=lambda c: c.startswith("worker")))[0]) == [
        "polling", "slow task", "task done"]
    assert messages(store.query("e1", LogQuery(level="WARNING"))[0]) == ["slow task", "task failed: boom"]
    assert messages(store.query("e1", LogQuery(since=stamp(3), until=stamp(4)))[0]) == ["slow task", "task failed: boom"]
    assert messages(store.query("e1", LogQuery(grep="task"))[0]) == ["slow task", "task failed: boom", "task done"]
    assert messages(store.query("e1", LogQuery(grep="INFO"))[0]) == []  # the text only, not the level
    assert messages(store.query("e1", LogQuery(limit=2))[0]) == ["task failed: boom", "task done"]
    assert store.query("other", LogQuery()) == ([], 0)


def test_a_full_segment_is_rotated_and_still_read(store):
    for i in range(300):
        store.append("e1", "scheduler", [(stamp(i), "INFO", f"line {i:03d} " + "x" * 40)])
    folder = store.root / "e1" / "scheduler"
    segments = sorted(p.name for p in folder.iterdir())
    assert len(segments) > 2 and "current.log" in segments
    assert all(os.path.getsize(folder / name) <= 10_000 + 200 for name in segments)
    lines, _ = store.query("e1", LogQuery(limit=0 or 10_000))
    assert messages(lines) == [f"line {i:03d} " + "x" * 40 for i in range(300)]
    # segments wholly before `since` are skipped, and the answer is the same
    assert messages(store.query("e1", LogQuery(since=stamp(290)))[0]) == [f"line {i:03d} " + "x" * 40 for i in range(290, 300)]


def test_an_environment_keeps_at_most_max_bytes_of_rotated_logs(tmp_path):
    store = LogStore(tmp_path / "logs", segment_bytes=2_000, max_bytes=10_000, retention_days=30)
    for i in range(2000):
        store.append("noisy", "worker-1", [(stamp(i % 3600), "INFO", "y" * 60)])
    total = sum(p.stat().st_size for p in (tmp_path / "logs" / "noisy").rglob("*.log"))
    assert total <= 10_000 + 2_000 + 100
    store.append("quiet", "scheduler", [(stamp(1), "INFO", "kept")])  # another environment is untouched
    assert messages(store.query("quiet", LogQuery())[0]) == ["kept"]


def test_the_sweep_removes_segments_past_retention_and_empty_folders(store):
    fill(store)
    old = time.time() - 31 * 86400
    for path in (store.root / "e1").rglob("*.log"):
        os.utime(path, (old, old))
    store.append("e2", "scheduler", [(stamp(1), "INFO", "recent")])
    store.sweep()
    assert not (store.root / "e1").exists()
    assert messages(store.query("e2", LogQuery())[0]) == ["recent"]


def test_a_follower_gets_every_new_matching_line_once(store):
    fill(store)
    _, cursor = store.query("e1", LogQuery())
    query = LogQuery(level="WARNING")
    got = []

    def follow():
        after = cursor
        while len(got) < 2:
            lines, after = store.follow("e1", query, after, timeout=5)
            got.extend(lines)

    reader = threading.Thread(target=follow)
    reader.start()
    store.append("e1", "scheduler", [(stamp(6), "INFO", "quiet"), (stamp(7), "ERROR", "first")])
    store.append("e1", "worker-1", [(stamp(8), "WARNING", "second")])
    reader.join(10)
    assert messages(got) == ["first", "second"]
    assert store.follow("e1", query, 8, timeout=0.01) == ([], 8)  # nothing new: an empty batch after the wait
