"""Settings: the runtimes folder defaults to HANGAR_HOME/runtimes and HANGAR_RUNTIMES_DIR moves it."""
from __future__ import annotations

from pathlib import Path

import pytest

from hangar.settings import Settings


@pytest.fixture(autouse=True)
def no_runtimes_dir(monkeypatch):
    monkeypatch.delenv("HANGAR_RUNTIMES_DIR", raising=False)


def test_runtimes_dir_defaults_to_home_runtimes(tmp_path: Path):
    assert Settings(home=tmp_path).runtimes_dir == tmp_path / "runtimes"


def test_runtimes_dir_follows_hangar_home(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HANGAR_HOME", str(tmp_path / "h"))
    assert Settings().runtimes_dir == tmp_path / "h" / "runtimes"


def test_hangar_runtimes_dir_is_read_from_the_environment(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HANGAR_RUNTIMES_DIR", str(tmp_path / "shared"))
    for home in ("a", "b"):
        settings = Settings(home=tmp_path / home)
        assert settings.runtimes_dir == tmp_path / "shared"
        settings.ensure_dirs()
    assert (tmp_path / "shared").is_dir()
    assert not (tmp_path / "a" / "runtimes").exists()


def test_an_empty_hangar_runtimes_dir_means_the_default(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HANGAR_RUNTIMES_DIR", "")
    assert Settings(home=tmp_path).runtimes_dir == tmp_path / "runtimes"


def test_runtimes_dir_is_made_absolute(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Settings(home=tmp_path, runtimes_dir="rel").runtimes_dir == tmp_path / "rel"
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert Settings(home=tmp_path, runtimes_dir="~/r").runtimes_dir == tmp_path / "user" / "r"
