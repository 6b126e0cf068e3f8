"""A directory made an exact copy of a set of object versions (a bucket folder's DAGs or plugins).

Files that match their object (size and sha256) are left untouched, so a process reading
them sees no change; others are replaced in one step each (hangar.buckets.blobs.copy_blob);
files and folders that no object maps to are removed, links included, never followed.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from hangar.buckets.blobs import copy_blob, file_sha256
from hangar.buckets.models import BucketObjectRow
from hangar.context import Context


@dataclass(kw_only=True)
class MaterializeResult:
    """Paths relative to the target directory, in POSIX form."""

    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def mirror(ctx: Context, *, root: Path, wanted: dict[str, BucketObjectRow], folders: set[str]) -> MaterializeResult:
    """Make `root` hold exactly `wanted` (relative path -> version) in `folders` (relative paths)."""
    root.mkdir(parents=True, exist_ok=True)
    result = MaterializeResult()

    # remove what no object maps to (including a file where a folder must go, and vice versa)
    for current, dirnames, filenames in os.walk(root, topdown=True):
        base = Path(current)
        rel_base = base.relative_to(root).as_posix()
        rel_base = "" if rel_base == "." else f"{rel_base}/"
        for name in list(dirnames):
            rel = rel_base + name
            path = base / name
            if rel not in folders or path.is_symlink():
                _remove(path)
                result.removed.append(rel + "/")
                dirnames.remove(name)
        for name in filenames:
            rel = rel_base + name
            if rel not in wanted:
                (base / name).unlink(missing_ok=True)
                result.removed.append(rel)

    for rel in sorted(wanted):
        row = wanted[rel]
        path = root / rel
        if _same_file(path, size=row.size, sha256=row.sha256):
            result.unchanged.append(rel)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        copy_blob(ctx, row, path)
        result.written.append(rel)
    return result


def _same_file(path: Path, *, size: int, sha256: str) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    return path.stat().st_size == size and file_sha256(path) == sha256


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
