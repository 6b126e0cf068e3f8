"""Where each environment's log lines are kept, and how they are read back.

Layout: <root>/<env_id>/<component>/current.log takes new lines; past `segment_bytes` it is
renamed after its first line's time (<time>.log, so names sort by time) and a new one begun.
Every line is "<UTC time, fixed width>\t<LEVEL>\t<text>", so a time comparison is a text
comparison and a --grep is a substring search over whole files.

Bounds, so that one environment's logs never fill the disk: rotated segments older than
`retention_days` are removed, and so are the oldest ones while an environment holds more than
`max_bytes` (checked at every rotation, not only by the periodic sweep). An environment's
folder is removed once nothing in it is left.

Followers: every line appended gets a sequence number per environment, and the newest
`live_lines` are kept in memory; `follow` waits on them. A query and the sequence number it
returns are taken under the environment's lock, so a follower that goes on from that number
misses and repeats nothing (unless it falls more than `live_lines` behind).
"""
from __future__ import annotations

import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hangar.logstore.lines import RANK, TIME_WIDTH
from hangar.settings import Settings

CURRENT = "current.log"


@dataclass(frozen=True, kw_only=True)
class LogLine:
    time: str
    component: str
    level: str
    message: str


@dataclass(frozen=True, kw_only=True)
class LogQuery:
    # which components' lines (by name); None: all
    components: Callable[[str], bool] | None = None
    level: str | None = None  # this level and above
    since: str | None = None  # UTC time stamps in the stored form (lines.utc_stamp)
    until: str | None = None
    grep: str | None = None  # a substring of the text
    limit: int = 1000  # the newest this many lines

    def wants(self, component: str) -> bool:
        return self.components is None or self.components(component)

    def keeps(self, line: str) -> bool:
        """Whether a stored line (of a wanted component) matches."""
        stamp = line[:TIME_WIDTH]
        if (self.since and stamp < self.since) or (self.until and stamp > self.until):
            return False
        tab = line.find("\t", TIME_WIDTH + 1)
        if tab < 0:
            return False
        if self.level and RANK.get(line[TIME_WIDTH + 1:tab], 0) < RANK[self.level]:
            return False
        return not self.grep or self.grep in line[tab + 1:]


def _parse(component: str, line: str) -> LogLine:
    stamp, level, message = line.split("\t", 2)
    return LogLine(time=stamp, component=component, level=level, message=message)


class LogStore:
    def __init__(self, root: Path, *, segment_bytes: int, max_bytes: int, retention_days: float,
                 live_lines: int = 10_000) -> None:
        self.root = root
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.retention_days = retention_days
        self._live_lines = live_lines
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Condition] = {}
        self._seq: dict[str, int] = {}
        self._live: dict[str, deque[tuple[int, LogLine]]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> LogStore:
        return cls(settings.logs_dir, segment_bytes=settings.log_segment_bytes, max_bytes=settings.log_max_bytes,
                   retention_days=settings.log_retention_days)

    def _lock(self, env_id: str) -> threading.Condition:
        with self._guard:
            return self._locks.setdefault(env_id, threading.Condition())

    # --- writing ---

    def append(self, env_id: str, component: str, records: list[tuple[str, str, str]]) -> None:
        """Add (time stamp, level, text) records of one component, in order."""
        if not records:
            return
        folder = self.root / env_id / component
        text = "".join(f"{stamp}\t{level}\t{message.rstrip(chr(13))}\n" for stamp, level, message in records)
        lock = self._lock(env_id)
        with lock:
            folder.mkdir(parents=True, exist_ok=True)
            current = folder / CURRENT
            with current.open("a", encoding="utf-8", errors="replace") as out:
                out.write(text)
                size = out.tell()
            live = self._live.setdefault(env_id, deque(maxlen=self._live_lines))
            seq = self._seq.get(env_id, 0)
            for stamp, level, message in records:
                seq += 1
                live.append((seq, LogLine(time=stamp, component=component, level=level, message=message)))
            self._seq[env_id] = seq
            if size > self.segment_bytes:
                self._rotate(current)
                self._cap(self.root / env_id)
            lock.notify_all()

    @staticmethod
    def _rotate(current: Path) -> None:
        with current.open(encoding="utf-8", errors="replace") as f:
            first = f.readline()[:TIME_WIDTH]
        target = current.with_name(f"{first}.log")
        n = 1
        while target.exists():  # two segments begun in the same microsecond
            target, n = current.with_name(f"{first}-{n}.log"), n + 1
        current.rename(target)

    def _cap(self, folder: Path) -> None:
        segments = sorted(((p.name, p) for p in folder.glob("*/*.log") if p.name != CURRENT))
        total = sum(p.stat().st_size for p in folder.glob("*/*.log"))
        for _, path in segments:
            if total <= self.max_bytes:
                break
            total -= path.stat().st_size
            path.unlink()

    def sweep(self, *, now: float | None = None) -> None:
        """Apply retention to every environment's logs (the control plane calls it now and then)."""
        cutoff = (now if now is not None else time.time()) - self.retention_days * 86400
        if not self.root.is_dir():
            return
        for folder in [p for p in self.root.iterdir() if p.is_dir()]:
            with self._lock(folder.name):
                for path in folder.glob("*/*.log"):
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
                self._cap(folder)
                for component in [p for p in folder.iterdir() if p.is_dir()]:
                    if not any(component.iterdir()):
                        component.rmdir()
                if not any(folder.iterdir()):
                    shutil.rmtree(folder, ignore_errors=True)

    # --- reading ---

    def components(self, env_id: str) -> list[str]:
        folder = self.root / env_id
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def query(self, env_id: str, q: LogQuery) -> tuple[list[LogLine], int]:
        """The newest `q.limit` matching lines, oldest first, and the sequence number to follow from."""
        with self._lock(env_id):
            found: list[tuple[str, str, str]] = []
            for component in self.components(env_id):
                if q.wants(component):
                    found.extend((line[:TIME_WIDTH], component, line)
                                 for line in self._scan(self.root / env_id / component, q))
            found.sort(key=lambda hit: hit[0])
            lines = [_parse(component, line) for _, component, line in found[-q.limit:]] if q.limit else []
            return lines, self._seq.get(env_id, 0)

    @staticmethod
    def _files(folder: Path, q: LogQuery) -> list[Path]:
        """A component's segments in time order, without those wholly outside since/until."""
        rotated = sorted(p for p in folder.glob("*.log") if p.name != CURRENT)
        ordered = rotated + ([folder / CURRENT] if (folder / CURRENT).exists() else [])
        starts = [p.name[:TIME_WIDTH] for p in rotated]
        keep = []
        for i, path in enumerate(ordered):
            begins = starts[i] if i < len(starts) else None
            ends = starts[i + 1] if i + 1 < len(starts) else None  # the next segment's first line
            if q.since and ends and ends < q.since:
                continue
            if q.until and begins and begins > q.until:
                continue
            keep.append(path)
        return keep

    def _scan(self, folder: Path, q: LogQuery) -> deque[str]:
        kept: deque[str] = deque(maxlen=q.limit or None)
        for path in self._files(folder, q):
            try:
                data = path.read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                continue
            if q.grep:  # find the text first, then look only at the lines that hold it
                pos = data.find(q.grep)
                while pos >= 0:
                    start = data.rfind("\n", 0, pos) + 1
                    end = data.find("\n", pos)
                    end = len(data) if end < 0 else end
                    line = data[start:end]
                    if q.keeps(line):
                        kept.append(line)
                    pos = data.find(q.grep, end)
            else:
                kept.extend(line for line in data.splitlines() if q.keeps(line))
        return kept

    def follow(self, env_id: str, q: LogQuery, after: int, *, timeout: float) -> tuple[list[LogLine], int]:
        """Matching lines appended after sequence number `after`, waiting up to `timeout` seconds
        for the first; and the sequence number to go on from."""
        lock = self._lock(env_id)
        with lock:
            lock.wait_for(lambda: self._seq.get(env_id, 0) > after, timeout=timeout)
            seq = self._seq.get(env_id, 0)
            new = [line for n, line in self._live.get(env_id, ()) if n > after]
        raw = (f"{line.time}\t{line.level}\t{line.message}" for line in new)
        return [line for line, text in zip(new, raw) if q.wants(line.component) and q.keeps(text)], seq
