"""An environment's cgroups and RLIMIT_NPROC: made with its limits, entered before the drop to
its user, removed with it. The kernel's own enforcement is tested where the machine allows it
(root, with a pids and a memory controller)."""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from hangar.backend import confinement
from hangar.backend.identity import RunAs
from hangar.runtime.venvs import python_for_everyone

NOBODY = 65534


def fake_v1(monkeypatch, tmp_path: Path) -> Path:
    for controller in ("pids", "memory"):
        (tmp_path / controller / "parent").mkdir(parents=True)
    monkeypatch.setattr(confinement, "_own_paths", lambda: {"pids": "/", "memory": "/parent", "": "/"})
    monkeypatch.setattr(confinement, "_mounts", lambda: ({"pids": tmp_path / "pids", "memory": tmp_path / "memory"}, None))
    return tmp_path


def test_the_environment_gets_a_cgroup_in_each_controller_with_its_limit(monkeypatch, tmp_path: Path) -> None:
    root = fake_v1(monkeypatch, tmp_path)
    procs = confinement.prepare("0123456789abcdef-ffff", confinement.Limits(max_processes=300, memory_bytes=2**31))
    pids = root / "pids" / "hangar-0123456789abcdef"
    memory = root / "memory" / "parent" / "hangar-0123456789abcdef"
    assert procs == (str(pids / "cgroup.procs"), str(memory / "cgroup.procs"))
    assert (pids / "pids.max").read_text() == "300"
    assert (memory / "memory.limit_in_bytes").read_text() == str(2**31)
    # an update with another class changes the limits of the same cgroups
    confinement.prepare("0123456789abcdef-ffff", confinement.Limits(max_processes=500, memory_bytes=2**32))
    assert (pids / "pids.max").read_text() == "500"


def test_v2_is_used_only_when_the_parent_delegates_both_controllers(monkeypatch, tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    monkeypatch.setattr(confinement, "_own_paths", lambda: {"": "/app"})
    monkeypatch.setattr(confinement, "_mounts", lambda: ({}, tmp_path))
    (tmp_path / "app" / "cgroup.subtree_control").write_text("cpu memory\n")
    assert confinement.prepare("e1", confinement.Limits(10, 2**30)) == ()
    (tmp_path / "app" / "cgroup.subtree_control").write_text("cpu memory pids\n")
    assert confinement.prepare("e1", confinement.Limits(10, 2**30)) == (str(tmp_path / "app" / "hangar-e1" / "cgroup.procs"),)
    assert (tmp_path / "app" / "hangar-e1" / "pids.max").read_text() == "10"
    assert (tmp_path / "app" / "hangar-e1" / "memory.max").read_text() == str(2**30)


def test_no_controller_means_no_cgroup_and_the_user_keeps_rlimit_nproc(monkeypatch) -> None:
    monkeypatch.setattr(confinement, "_mounts", lambda: ({}, None))
    who = RunAs("hangar-x", NOBODY, NOBODY).confined("x", confinement.Limits(42, 2**30))
    assert who.cgroups == () and who.max_processes == 42
    assert "preexec_fn" in who.popen()  # the limit is set before the drop to the user


def test_an_unconfined_user_is_started_by_popen_alone() -> None:
    assert RunAs("hangar-x", NOBODY, NOBODY).popen() == {"user": NOBODY, "group": NOBODY, "extra_groups": []}


def _kernel_cgroups() -> bool:
    if os.geteuid() != 0:
        return False
    return bool(confinement._plan("probe", confinement.Limits(1, 1)))


@pytest.mark.skipif(not _kernel_cgroups(), reason="needs root and a pids and a memory cgroup controller")
def test_a_fork_bomb_stops_at_the_limit_and_runs_as_the_user() -> None:
    env_id = "test" + uuid.uuid4().hex[:12]
    who = RunAs("nobody", NOBODY, NOBODY).confined(env_id, confinement.Limits(max_processes=12, memory_bytes=256 * 2**20))
    try:
        assert len(who.cgroups) == 2
        bomb = ("import os, sys, time\n"
                "started = 0\n"
                "for _ in range(40):\n"
                "    try:\n"
                "        pid = os.fork()\n"
                "    except OSError as exc:\n"
                "        print('REFUSED', exc.errno)\n"
                "        break\n"
                "    if pid == 0:\n"
                "        os.close(1); os.close(2); time.sleep(60); os._exit(0)\n"
                "    started += 1\n"
                "print('STARTED', started, 'UID', os.getuid(), 'GROUPS', os.getgroups())\n"
                "print(open('/proc/self/cgroup').read())\n")
        out = subprocess.run([python_for_everyone("3.11"), "-c", bomb], capture_output=True, text=True, timeout=120,
                             env={"PATH": os.environ["PATH"]}, cwd="/", start_new_session=True, **who.popen())
        assert "REFUSED 11" in out.stdout, out.stdout + out.stderr  # EAGAIN, from the pids controller
        started = int(out.stdout.split("STARTED ")[1].split()[0])
        assert 0 < started < 12, out.stdout
        assert "UID 65534 GROUPS []" in out.stdout, out.stdout
        assert out.stdout.count(f"hangar-{env_id[:16]}") == 2, out.stdout
    finally:
        confinement.remove(env_id)  # kills the sleeps, then removes the cgroups
    assert not any(Path(p).parent.exists() for p in who.cgroups)
