"""A revision's plugins folder: Hangar's plugin plus the user's folder or plugins.zip, named by content."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from hangar.runtime.plugins import PluginsArchiveInvalid, content_sha256, stage


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def test_a_folder_is_copied_next_to_hangars_own_plugin(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "mine.py").write_text("X = 1\n")
    (source / "pkg" / "__init__.py").write_text("")
    staged = stage(tmp_path / "plugins", source=source)
    assert (staged / "mine.py").read_text() == "X = 1\n" and (staged / "pkg" / "__init__.py").exists()
    assert "HangarPlugin" in (staged / "hangar_login.py").read_text()
    assert stage(tmp_path / "plugins", source=source) == staged  # same content, same folder
    (source / "mine.py").write_text("X = 2\n")
    changed = stage(tmp_path / "plugins", source=source)
    assert changed != staged and (staged / "mine.py").read_text() == "X = 1\n"  # the running one is untouched


def test_a_zip_file_is_unpacked(tmp_path: Path) -> None:
    archive = tmp_path / "plugins.zip"
    archive.write_bytes(_zip({"zipped.py": "Y = 1\n"}))
    staged = stage(tmp_path / "plugins", source=archive)
    assert (staged / "zipped.py").read_text() == "Y = 1\n" and (staged / "hangar_login.py").exists()
    assert content_sha256(archive) != content_sha256(tmp_path / "plugins")


def test_no_plugins_is_hangars_own_alone(tmp_path: Path) -> None:
    staged = stage(tmp_path / "plugins")
    assert [p.name for p in staged.iterdir()] == ["hangar_login.py"]


def test_a_zip_member_outside_the_folder_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    archive.write_bytes(_zip({"../escape.py": "Z = 1\n"}))
    with pytest.raises(PluginsArchiveInvalid, match="outside the plugins folder"):
        stage(tmp_path / "plugins", source=archive)
    assert not (tmp_path / "escape.py").exists()
    assert list((tmp_path / "plugins").iterdir()) == []
