"""One snapshot, one file: a tar.gz with the manifest, the metadata database dump, DAGs and plugins.

Layout of the archive:
    manifest.json   environment, revision, kind, Airflow version, created_at, the spec,
                    and the sha256 of every other member
    db.dump         pg_dump's custom format (-Fc)
    dags/...        the DAGs folder the revision ran with
    plugins/...     the environment's plugins (Hangar's own plugin file left out)

Invariants: an archive is trusted only after `verify` found its sha256 equal to the
one recorded in the store, every member listed in the manifest with the same sha256,
and nothing else in it; a member that is not a plain file or folder, or whose path
is absolute or climbs out with `..`, makes the archive corrupted. `extract` verifies
first and hashes again while it writes, so a file changed between the two is caught.
Archives are written to a temporary name and renamed, so a crash never leaves a half
archive under the final name.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tarfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from pydantic import BaseModel, ValidationError

from hangar.errors import SnapshotCorrupted

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
DB_DUMP = "db.dump"
FOLDERS = ("dags", "plugins")
FORMAT = 1
_SKIP = {"__pycache__", ".git"}
_CHUNK = 1024 * 1024


class Manifest(BaseModel):
    format: int = FORMAT
    snapshot_id: str
    environment: str
    environment_id: str
    revision: int
    kind: str
    airflow_version: str
    created_at: datetime
    spec: dict[str, Any]
    # member path -> sha256; filled in by write_archive
    members: dict[str, str] = {}


@dataclass(frozen=True, kw_only=True)
class Written:
    path: Path
    size: int
    sha256: str


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_archive(path: Path, *, manifest: Manifest, db_dump: Path, dags: Path | None,
                  plugins: Path | None, skip_plugins: frozenset[str] = frozenset()) -> Written:
    """Write the archive at `path` (atomically) and return its size and sha256.

    `skip_plugins` names top-level plugin files that are not the user's (Hangar's own)."""
    files: dict[str, Path] = {DB_DUMP: db_dump}
    for prefix, folder, skip in (("dags", dags, frozenset()), ("plugins", plugins, skip_plugins)):
        if folder is not None and folder.is_dir():
            for relative, source in _walk(folder):
                if relative not in skip:
                    files[f"{prefix}/{relative}"] = source
    members = {name: file_sha256(source) for name, source in files.items()}
    body = manifest.model_copy(update={"members": members}).model_dump_json(indent=2).encode()

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with tarfile.open(partial, "w:gz", dereference=True) as tar:
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode, info.mtime = len(body), 0o600, int(manifest.created_at.timestamp())
        tar.addfile(info, io.BytesIO(body))
        for name, source in files.items():
            tar.add(source, arcname=name, recursive=False)
    os.replace(partial, path)
    return Written(path=path, size=path.stat().st_size, sha256=file_sha256(path))


def verify(path: Path, *, sha256: str) -> Manifest:
    """Check the whole archive against `sha256` (from the store) and its manifest; nothing is written."""
    if not path.is_file():
        raise SnapshotCorrupted(f"snapshot archive {path} is missing")
    actual = file_sha256(path)
    if actual != sha256:
        raise SnapshotCorrupted(f"snapshot archive {path.name} has sha256 {actual}, but {sha256} was recorded "
                                "when it was taken: the file was changed or damaged")
    return _scan(path, target=None)


def extract(path: Path, *, sha256: str, target: Path) -> Manifest:
    """Verify, then unpack into `target` (made empty first): db.dump, dags/ and plugins/."""
    verify(path, sha256=sha256)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for folder in FOLDERS:
        (target / folder).mkdir()
    return _scan(path, target=target)


def _walk(folder: Path):
    """Files under `folder`; a symbolic link that leads outside it is left out (the archive is
    written by the control plane, which can read what the environment may not)."""
    inside = folder.resolve()
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP)
        for name in sorted(names):
            source = Path(root) / name
            if source.is_symlink() and not source.resolve().is_relative_to(inside):
                log.warning("snapshot leaves out %s: a link to %s, outside %s", source, source.resolve(), folder)
                continue
            if source.is_file() and not name.endswith(".pyc"):
                yield source.relative_to(folder).as_posix(), source


def _scan(path: Path, *, target: Path | None) -> Manifest:
    """Read every member once: hash it, compare with the manifest, and write it under `target` if given."""
    seen: dict[str, str] = {}
    manifest: Manifest | None = None
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                name = _safe_name(member)
                if member.isdir():
                    continue
                handle = tar.extractfile(member)
                assert handle is not None
                if name == MANIFEST:
                    manifest = _manifest(handle.read())
                    continue
                if name in seen:
                    raise SnapshotCorrupted(f"snapshot archive {path.name} holds {name!r} twice")
                seen[name] = _copy(handle, None if target is None else target / name)
    except (tarfile.TarError, EOFError, OSError) as exc:  # gzip and tar framing errors
        raise SnapshotCorrupted(f"snapshot archive {path.name} cannot be read: {exc}") from None
    if manifest is None:
        raise SnapshotCorrupted(f"snapshot archive {path.name} has no {MANIFEST}")
    _compare(path.name, manifest.members, seen)
    return manifest


def _safe_name(member: tarfile.TarInfo) -> str:
    name = member.name
    parts = PurePosixPath(name).parts
    if name.startswith("/") or ".." in parts or not parts:
        raise SnapshotCorrupted(f"snapshot member {name!r} would land outside the restore folder")
    if not (member.isfile() or member.isdir()):
        raise SnapshotCorrupted(f"snapshot member {name!r} is not a plain file or folder")
    if name not in (MANIFEST, DB_DUMP) and parts[0] not in FOLDERS:
        raise SnapshotCorrupted(f"snapshot member {name!r} is not one a snapshot holds")
    return PurePosixPath(*parts).as_posix()


def _manifest(body: bytes) -> Manifest:
    try:
        manifest = Manifest.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        raise SnapshotCorrupted(f"{MANIFEST} does not parse: {str(exc).splitlines()[0]}") from None
    if manifest.format != FORMAT:
        raise SnapshotCorrupted(f"{MANIFEST} has format {manifest.format}; this Hangar reads format {FORMAT}")
    return manifest


def _copy(handle: BinaryIO, destination: Path | None) -> str:
    digest = hashlib.sha256()
    out = None
    if destination is not None:
        destination.parent.mkdir(parents=True, exist_ok=True)
        out = open(destination, "wb")
    try:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            if out is not None:
                out.write(chunk)
    finally:
        if out is not None:
            out.close()
    return digest.hexdigest()


def _compare(archive: str, expected: dict[str, str], seen: dict[str, str]) -> None:
    if DB_DUMP not in expected:
        raise SnapshotCorrupted(f"{MANIFEST} of {archive} lists no {DB_DUMP}")
    missing = sorted(expected.keys() - seen.keys())
    if missing:
        raise SnapshotCorrupted(f"snapshot archive {archive} lacks {', '.join(map(repr, missing))}, which its "
                                "manifest lists")
    extra = sorted(seen.keys() - expected.keys())
    if extra:
        raise SnapshotCorrupted(f"snapshot archive {archive} holds {', '.join(map(repr, extra))}, which its "
                                "manifest does not list")
    changed = [name for name in sorted(expected) if seen[name] != expected[name]]
    if changed:
        name = changed[0]
        raise SnapshotCorrupted(f"snapshot member {name!r} has sha256 {seen[name]}, but the manifest records "
                                f"{expected[name]}")
