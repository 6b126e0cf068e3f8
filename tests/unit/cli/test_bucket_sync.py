"""`hangar bucket sync` never uploads what a symlink outside the folder points at."""
from __future__ import annotations

from pathlib import Path

from hangar.cli.bucket import _local_files


def test_symlinks_that_leave_the_folder_are_skipped_and_named(tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere" / "id_rsa"
    secret.parent.mkdir()
    secret.write_text("PRIVATE")
    dags = tmp_path / "dags"
    (dags / "sub").mkdir(parents=True)
    (dags / "a.py").write_text("a = 1\n")
    (dags / "sub" / "b.py").write_text("b = 2\n")
    (dags / "inside.py").symlink_to(dags / "a.py")  # stays in the folder: uploaded as a file
    (dags / "key.txt").symlink_to(secret)
    (dags / "linked").symlink_to(secret.parent, target_is_directory=True)  # not walked at all

    files, outside = _local_files(dags, exclude=[])

    assert sorted(files) == ["a.py", "inside.py", "sub/b.py"]
    assert outside == {"key.txt": secret.resolve()}
    files, outside = _local_files(dags, exclude=["key.txt"])
    assert outside == {}
