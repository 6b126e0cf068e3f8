"""Environments' system users: made, handed their folder, asked what they may read, removed.
Root only, as the control plane needs root for it."""
from __future__ import annotations

import os
import pwd
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from hangar.backend import identity

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="making system users needs root")


@pytest.fixture
def env_id():
    made = str(uuid.uuid4())
    yield made
    identity.remove_user(made)


def test_a_user_is_made_once_unprivileged_and_removed(env_id):
    who = identity.ensure_user(env_id)
    assert identity.ensure_user(env_id) == who
    entry = pwd.getpwnam(who.name)
    assert who.name == f"hangar-{env_id.replace('-', '')[:16]}" and len(who.name) <= 32
    assert who.uid != 0 and entry.pw_shell == "/usr/sbin/nologin"
    ran = subprocess.run(["sh", "-c", "id -u; id -G"], capture_output=True, text=True, **who.popen())
    assert ran.stdout.split() == [str(who.uid), str(who.gid)]  # no supplementary groups
    identity.remove_user(env_id)
    assert identity.lookup(env_id) is None
    identity.remove_user(env_id)  # nothing left: nothing to do


def test_hand_over_gives_the_whole_folder_and_closes_it(env_id):
    who = identity.ensure_user(env_id)
    root = Path(tempfile.mkdtemp(prefix="hangar-id-"))
    try:
        (root / "logs" / "components").mkdir(parents=True)
        (root / "airflow.cfg").write_text("[core]\n")
        (root / "dags-current").symlink_to("/nonexistent")
        identity.hand_over(root, who)
        owners = {p.lstat().st_uid for p in [root, *root.rglob("*")]}
        assert owners == {who.uid}
        assert root.stat().st_mode & 0o777 == 0o700
        ran = subprocess.run(["cat", str(root / "airflow.cfg")], capture_output=True, **who.popen())
        assert ran.returncode == 0
    finally:
        subprocess.run(["rm", "-rf", str(root)])


def test_can_read_follows_every_folder_above(env_id):
    who = identity.ensure_user(env_id)
    outer = Path(tempfile.mkdtemp(prefix="hangar-id-"))
    try:
        inner = outer / "dags"
        inner.mkdir()
        inner.chmod(0o755)
        outer.chmod(0o700)  # as pytest's and /root's folders are
        assert not identity.can_read(inner, who)
        outer.chmod(0o755)
        assert identity.can_read(inner, who)
    finally:
        subprocess.run(["rm", "-rf", str(outer)])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give files to another user")
def test_what_a_user_left_in_shared_temporary_folders_goes_with_it(monkeypatch, tmp_path) -> None:
    from hangar.backend import identity

    shared = tmp_path / "tmp"
    shared.mkdir()
    (shared / "theirs").mkdir()
    (shared / "theirs" / "f").write_text("x")
    (shared / "their-link").symlink_to("/etc/hostname")
    (shared / "mine").write_text("kept")
    for path in (shared / "theirs", shared / "theirs" / "f"):
        os.chown(path, 65534, 65534)
    os.lchown(shared / "their-link", 65534, 65534)
    monkeypatch.setattr(identity, "SHARED_TEMP", (shared,))
    identity._remove_files_of(65534)
    assert sorted(p.name for p in shared.iterdir()) == ["mine"]
    assert os.path.exists("/etc/hostname")
