"""Unpacking an MWAA-style plugins.zip into an environment's plugins folder.

Members that would land outside the folder (absolute paths, `..`) are refused,
so an archive can never write anywhere else. Hangar's own plugin file stays.
"""
from __future__ import annotations

import hashlib
import io
import shutil
import zipfile
from pathlib import Path

from hangar.errors import PermanentError

KEEP = {"hangar_login.py"}


class PluginsArchiveInvalid(PermanentError):
    code = "PLUGINS_INVALID"


def unpack_zip(archive: bytes, target: Path) -> list[str]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(archive))
    except zipfile.BadZipFile as exc:
        raise PluginsArchiveInvalid(f"plugins.zip is not a zip archive: {exc}") from None
    root = target.resolve()
    names = []
    for member in zf.infolist():
        destination = (root / member.filename).resolve()
        if not destination.is_relative_to(root) or member.filename.startswith("/"):
            raise PluginsArchiveInvalid(f"plugins.zip member {member.filename!r} would land outside the plugins folder")
        names.append(member.filename)
    for child in root.iterdir():
        if child.name not in KEEP:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    zf.extractall(root)
    return names


HANGAR_PLUGIN = "from hangar_airflow.plugin import HangarPlugin  # noqa: F401\n"


def content_sha256(source: Path) -> str:
    """A digest of a plugins folder or plugins.zip: names and bytes of every file, so a
    revision can tell whether the plugins changed even when the path did not."""
    digest = hashlib.sha256()
    if source.is_file():
        digest.update(source.read_bytes())
        return digest.hexdigest()
    for path in sorted(p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(source)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def stage(parent: Path, *, source: Path | None = None, archive: bytes | None = None) -> Path:
    """The plugins folder of one revision: Hangar's own plugin plus the user's, under a
    name that is their digest, so the running revision's folder is never written while
    the next one is built and checked. Built aside and renamed into place."""
    if source is not None and source.is_file():
        archive, source = source.read_bytes(), None
    key = hashlib.sha256(archive).hexdigest() if archive is not None else (
        content_sha256(source) if source is not None else "none")
    target = parent / key[:16]
    if target.is_dir():
        return target
    building = parent / f".{key[:16]}.building"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    try:
        if source is not None:
            shutil.copytree(source, building, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        (building / "hangar_login.py").write_text(HANGAR_PLUGIN)
        if archive is not None:
            unpack_zip(archive, building)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    building.rename(target)
    return target
