"""Snapshot archives: a round trip, and every way an archive can fail to match what was recorded."""
from __future__ import annotations

import io
import json
import tarfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from hangar.errors import SnapshotCorrupted
from hangar.runtime import snapshot_archive
from hangar.runtime.snapshot_archive import Manifest


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "dags" / "sub").mkdir(parents=True)
    (root / "dags" / "hello.py").write_text("print('hello')\n")
    (root / "dags" / "sub" / "util.py").write_text("X = 1\n")
    (root / "dags" / "__pycache__").mkdir()
    (root / "dags" / "__pycache__" / "hello.cpython-311.pyc").write_bytes(b"\0compiled")
    (root / "plugins").mkdir()
    (root / "plugins" / "hangar_login.py").write_text("# Hangar's own\n")
    (root / "plugins" / "mine.py").write_text("Y = 2\n")
    (root / "db.dump").write_bytes(bytes(range(256)) * 64)
    return root


def _manifest() -> Manifest:
    return Manifest(snapshot_id="s1", environment="env", environment_id="e1", revision=3, kind="manual",
                    airflow_version="3.3.2", created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
                    spec={"airflow_version": "3.3.2", "dags": "/somewhere"})


def _write(sources: Path, path: Path) -> snapshot_archive.Written:
    return snapshot_archive.write_archive(path, manifest=_manifest(), db_dump=sources / "db.dump",
                                          dags=sources / "dags", plugins=sources / "plugins",
                                          skip_plugins=frozenset({"hangar_login.py"}))


def _rewrite(original: Path, path: Path, change) -> str:
    """Copy the archive member by member through `change(name, data) -> data | None` (None drops it)."""
    with tarfile.open(original, "r:gz") as src, tarfile.open(path, "w:gz") as dst:
        for member in src:
            data = src.extractfile(member).read() if member.isfile() else b""
            new = change(member.name, data)
            if new is None:
                continue
            info = tarfile.TarInfo(member.name)
            info.size = len(new)
            dst.addfile(info, io.BytesIO(new))
    return snapshot_archive.file_sha256(path)


def test_round_trip(sources: Path, tmp_path: Path) -> None:
    written = _write(sources, tmp_path / "out" / "s1.tar.gz")
    assert written.sha256 == snapshot_archive.file_sha256(written.path)
    assert not list((tmp_path / "out").glob(".*partial"))
    manifest = snapshot_archive.verify(written.path, sha256=written.sha256)
    assert manifest.spec["dags"] == "/somewhere" and manifest.revision == 3
    assert set(manifest.members) == {"db.dump", "dags/hello.py", "dags/sub/util.py", "plugins/mine.py"}

    target = tmp_path / "restored"
    snapshot_archive.extract(written.path, sha256=written.sha256, target=target)
    assert (target / "db.dump").read_bytes() == (sources / "db.dump").read_bytes()
    assert (target / "dags" / "sub" / "util.py").read_text() == "X = 1\n"
    assert (target / "plugins" / "mine.py").exists() and not (target / "plugins" / "hangar_login.py").exists()
    assert not (target / "manifest.json").exists()


def test_a_flipped_byte_breaks_the_overall_checksum(sources: Path, tmp_path: Path) -> None:
    written = _write(sources, tmp_path / "s1.tar.gz")
    data = bytearray(written.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    written.path.write_bytes(bytes(data))
    with pytest.raises(SnapshotCorrupted, match="sha256 .* was recorded"):
        snapshot_archive.verify(written.path, sha256=written.sha256)
    with pytest.raises(SnapshotCorrupted):
        snapshot_archive.extract(written.path, sha256=written.sha256, target=tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_wrong_recorded_checksum_is_refused(sources: Path, tmp_path: Path) -> None:
    written = _write(sources, tmp_path / "s1.tar.gz")
    with pytest.raises(SnapshotCorrupted, match="was recorded"):
        snapshot_archive.verify(written.path, sha256="0" * 64)


def test_a_missing_archive_is_named(tmp_path: Path) -> None:
    with pytest.raises(SnapshotCorrupted, match="missing"):
        snapshot_archive.verify(tmp_path / "gone.tar.gz", sha256="0" * 64)


# The next cases rebuild the archive, so the overall checksum matches the new file and
# only the manifest can catch the change.

def test_a_changed_member_is_named(sources: Path, tmp_path: Path) -> None:
    written = _write(sources, tmp_path / "s1.tar.gz")
    sha = _rewrite(written.path, tmp_path / "t.tar.gz",
                   lambda name, data: b"print('evil')\n" if name == "dags/hello.py" else data)
    with pytest.raises(SnapshotCorrupted, match="'dags/hello.py' has sha256"):
        snapshot_archive.verify(tmp_path / "t.tar.gz", sha256=sha)


def test_an_extra_member_is_named(sources: Path, tmp_path: Path) -> None:
    written = _write(sources, tmp_path / "s1.tar.gz")
    original = snapshot_archive.file_sha256(written.path)
    with tarfile.open(written.path, "r:gz") as src, tarfile.open(tmp_path / "t.tar.gz", "w:gz") as dst:
        for member in src:
            dst.addfile(member, src.extractfile(member))
        info = tarfile.TarInfo("dags/extra.py")
        info.size = 3
        dst.addfile(info, io.BytesIO(b"x=1"))
    sha = snapshot_archive.file_sha256(tmp_path / "t.tar.gz")
    assert sha != original
    with pytest.raises(SnapshotCorrupted, match="'dags/extra.py', which its manifest does not list"):
        snapshot_archive.verify(tmp_path / "t.tar.gz", sha256=sha)


def test_a_missing_member_is_named(sources: Path, tmp_path: Path) -> None:
    written = _write(sources, tmp_path / "s1.tar.gz")
    sha = _rewrite(written.path, tmp_path / "t.tar.gz", lambda name, data: None if name == "db.dump" else data)
    with pytest.raises(SnapshotCorrupted, match="lacks 'db.dump'"):
        snapshot_archive.verify(tmp_path / "t.tar.gz", sha256=sha)


def test_a_manifest_edited_to_match_a_changed_member_still_fails_the_recorded_checksum(
        sources: Path, tmp_path: Path) -> None:
    written = _write(sources, tmp_path / "s1.tar.gz")

    def change(name: str, data: bytes) -> bytes:
        if name == "dags/hello.py":
            return b"evil\n"
        if name == "manifest.json":
            body = json.loads(data)
            body["members"]["dags/hello.py"] = snapshot_archive.hashlib.sha256(b"evil\n").hexdigest()
            return json.dumps(body).encode()
        return data

    sha = _rewrite(written.path, tmp_path / "t.tar.gz", change)
    assert snapshot_archive.verify(tmp_path / "t.tar.gz", sha256=sha)  # self-consistent...
    with pytest.raises(SnapshotCorrupted, match="was recorded"):  # ...but not the file that was recorded
        snapshot_archive.verify(tmp_path / "t.tar.gz", sha256=written.sha256)


@pytest.mark.parametrize("name", ["../escape.py", "/etc/evil", "dags/../../escape.py", "other/file"])
def test_unsafe_member_paths_are_refused(sources: Path, tmp_path: Path, name: str) -> None:
    written = _write(sources, tmp_path / "s1.tar.gz")
    with tarfile.open(written.path, "r:gz") as src, tarfile.open(tmp_path / "t.tar.gz", "w:gz") as dst:
        for member in src:
            dst.addfile(member, src.extractfile(member))
        info = tarfile.TarInfo(name)
        info.size = 1
        dst.addfile(info, io.BytesIO(b"x"))
    sha = snapshot_archive.file_sha256(tmp_path / "t.tar.gz")
    with pytest.raises(SnapshotCorrupted, match=f"{name!r}"):
        snapshot_archive.extract(tmp_path / "t.tar.gz", sha256=sha, target=tmp_path / "out")
    assert not (tmp_path / "escape.py").exists() and not (tmp_path / "out").exists()


def test_a_link_member_is_refused(sources: Path, tmp_path: Path) -> None:
    written = _write(sources, tmp_path / "s1.tar.gz")
    with tarfile.open(written.path, "r:gz") as src, tarfile.open(tmp_path / "t.tar.gz", "w:gz") as dst:
        for member in src:
            dst.addfile(member, src.extractfile(member))
        info = tarfile.TarInfo("dags/link.py")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        dst.addfile(info)
    sha = snapshot_archive.file_sha256(tmp_path / "t.tar.gz")
    with pytest.raises(SnapshotCorrupted, match="not a plain file"):
        snapshot_archive.verify(tmp_path / "t.tar.gz", sha256=sha)


def test_not_a_tar_at_all(tmp_path: Path) -> None:
    path = tmp_path / "junk.tar.gz"
    path.write_bytes(b"this is not gzip")
    with pytest.raises(SnapshotCorrupted, match="cannot be read"):
        snapshot_archive.verify(path, sha256=snapshot_archive.file_sha256(path))
