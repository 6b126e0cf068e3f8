"""Unpacking an MWAA-style plugins.zip into an environment's plugins folder.

Members that would land outside the folder (absolute paths, `..`) are refused,
so an archive can never write anywhere else. Hangar's own plugin file stays.
"""
from __future__ import annotations

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
