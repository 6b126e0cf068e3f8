"""What a joined host prints, and what it reads from its workers' logs.

Every line the host says goes to stdout with the time in front; a worker's own output stays in
its log file (<environment>/logs/components/worker-<n>.log), of which the host quotes the end
when the worker fails or does not get ready.
"""
from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from hangar.files import last_lines

out = Console(highlight=False)


def say(text: str) -> None:
    out.print(f"{time.strftime('%H:%M:%S')} {text}", markup=False, soft_wrap=True)


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def read_from(path: Path, offset: int) -> str:
    """Up to 1 MiB of `path` from `offset`; nothing when it does not exist (yet)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(1 << 20).decode(errors="replace")
    except FileNotFoundError:
        return ""


def log_tail(path: Path, lines: int = 5) -> str:
    """The last lines of a worker's log, on one line, to end a message with."""
    tail = last_lines(path, lines)
    return "its log ends: " + " | ".join(line.strip() for line in tail) if tail else "its log is empty"
