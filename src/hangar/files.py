"""Writing files safely in folders someone else may also write in.

An isolated environment's folder belongs to its user, while the control plane (root) still
writes a few files there (airflow.cfg, pid files). A file is written under a new name that
cannot be a link (O_EXCL | O_NOFOLLOW) and then renamed over the old one, which replaces a
link rather than writing through it. Readers see the old file or the new one, never a part.
"""
from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_writer(path: Path, *, mode: int = 0o644, durable: bool = False) -> Iterator[BinaryIO]:
    """A file to write `path`'s new content to; it replaces `path` when the block ends, and is
    removed instead if the block raises. `durable`: fsync the file and the rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)  # the rename itself survives a crash of the machine


def write_atomically(path: Path, data: bytes, *, mode: int = 0o644, durable: bool = False) -> None:
    """Replace `path` with `data` in one step; `durable`: fsync the file and the rename."""
    with atomic_writer(path, mode=mode, durable=durable) as file:
        file.write(data)


def fsync_dir(path: Path) -> None:
    """Make the entries of folder `path` (a rename into it) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def file_lock(path: Path, *, waiting: Callable[[], None] | None = None) -> Iterator[None]:
    """An exclusive flock on `path`; `waiting` is called once if another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def replace_symlink(link: Path, target: str | Path, *, durable: bool = False) -> None:
    """Make `link` point at `target` in one rename: readers see the old target or the new one,
    never none. `durable`: the rename survives a crash of the machine."""
    try:
        if os.readlink(link) == str(target):
            return
    except OSError:
        pass
    tmp = link.with_name(f".{link.name}.{secrets.token_hex(6)}.tmp")
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(link.parent)


def last_lines(path: Path, count: int) -> list[str]:
    """The last `count` lines of a text file, trailing blank lines left out; none when it does not exist."""
    try:
        return path.read_text(errors="replace").rstrip().splitlines()[-count:]
    except FileNotFoundError:
        return []
