"""Raw component output to log lines: each line gets a UTC time and a level.

Airflow 3 (structlog), Airflow 2 (logging's "[time] {file:line} LEVEL - ..."), gunicorn and
Celery each print their own prefix; the time and level are read from it. A line without one
(a traceback, a banner, a print) continues the record before it and takes its level, and its
time when both were read together; otherwise it takes the time it was read (INFO at a stream's start).
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
RANK = {name: index for index, name in enumerate(LEVELS)}
_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL", "EXCEPTION": "ERROR", "CRIT": "CRITICAL"}
TIME_WIDTH = len("2026-01-01T00:00:00.000000Z")

_TIME = r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{1,6})?(?: ?(?:Z|[+-]\d\d:?\d\d))?)"
# Each prefix: group 1 the time, the last group the level, an optional group "where" kept in the text.
_PATTERNS = [
    # Airflow 3: 2026-12-07T21:52:14.158179Z [info     ] text [logger] loc=...
    re.compile(_TIME + r" \[(\w+)\s*\] ?"),
    # Airflow 2: [2026-12-07T21:52:14.158+0000] {file.py:12} INFO - text
    re.compile(r"\[" + _TIME + r"\] (?P<where>\{[^}]*\}) (\w+) - "),
    # gunicorn: [2026-12-07 21:52:14 +0000] [123] [INFO] text
    re.compile(r"\[" + _TIME + r"\] \[\d+\] \[(\w+)\] ?"),
    # Celery: [2026-12-07 21:52:14,123: INFO/MainProcess] text
    re.compile(r"\[" + _TIME + r": (\w+)/[^\]]*\] ?"),
    # Python logging's defaults, the control plane's own: 2026-12-07 21:52:14,123 INFO text
    re.compile(_TIME + r" (\w+) "),
]


def level_name(text: str) -> str | None:
    name = text.upper()
    name = _ALIASES.get(name, name)
    return name if name in RANK else None


def utc_stamp(moment: datetime) -> str:
    """The fixed-width form every stored line starts with (so that times sort as text)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime | None:
    text = re.sub(r"\s+(?=[+-]\d\d:?\d\d$)", "", text.strip().replace(",", ".")).replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def head(line: str) -> tuple[str, str, str] | None:
    """(time stamp, level, text without the prefix) from a line's own prefix, or None."""
    for pattern in _PATTERNS:
        match = pattern.match(line)
        if match:
            level = level_name(match.group(match.re.groups))
            moment = parse_time(match.group(1))
            if level and moment:
                where = match.groupdict().get("where")
                rest = line[match.end():]
                return utc_stamp(moment), level, f"{where} {rest}" if where else rest
    return None


class LineReader:
    """Stamps one stream's lines; remembers the last record's time and level for the next chunk."""

    def __init__(self) -> None:
        self.last: tuple[str, str] | None = None

    def stamp(self, lines: list[str], *, now: datetime) -> list[tuple[str, str, str]]:
        out = []
        if self.last is not None:  # a record from an earlier read is over: later lines are newer
            self.last = (utc_stamp(now), self.last[1])
        for line in lines:
            found = head(line)
            if found:
                self.last = found[:2]
                out.append(found)
                continue
            if self.last is None:
                self.last = (utc_stamp(now), "INFO")
            out.append((*self.last, line))
        return out
