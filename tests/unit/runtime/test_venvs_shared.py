"""ensure_runtime on a runtimes folder shared by several processes and homes.

uv is replaced by a stand-in that makes a venv-like folder slowly, so the tests exercise the
lock, the building folders and the rename without installing anything: concurrent requests
for one key build once and all get a ready runtime; a build killed mid-way leaves nothing
under the key and the next request builds again; a building folder of a live process is
never removed by another.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hangar.errors import RuntimeBuildFailed
from hangar.runtime import venvs
from hangar.runtime.venvs import READY_MARKER, ensure_runtime, runtime_key

KEY = runtime_key(python="3.11", airflow_version="3.3.2", requirements=None)

# A child process: Settings from its environment (HANGAR_HOME, HANGAR_RUNTIMES_DIR), uv replaced
# by a stand-in that appends one line per build to BUILDS and, inside `pip install`, waits until
# the file RELEASE exists. Each progress message is printed as it comes, then the runtime's path.
CHILD = textwrap.dedent('''
    import os, time
    from pathlib import Path
    from hangar.runtime import venvs
    from hangar.settings import Settings

    def fake_uv(args, *, progress, log):
        if args[0] == "venv":
            folder = Path(args[-1])
            (folder / "bin").mkdir(parents=True)
            (folder / "bin" / "airflow").write_text(f"#!{folder}/bin/python\\nprint('airflow')\\n")
            with open(os.environ["BUILDS"], "a") as builds:
                builds.write(f"{os.getpid()}\\n")
        else:
            deadline = time.monotonic() + 60
            while not os.path.exists(os.environ["RELEASE"]) and time.monotonic() < deadline:
                time.sleep(0.02)
        return 0, ""

    venvs.run_uv = fake_uv
    settings = Settings()
    settings.ensure_dirs()
    runtime = venvs.ensure_runtime(root=settings.runtimes_dir, python="3.11", airflow_version="3.3.2",
                                   requirements=None, progress=lambda text: print(text, flush=True))
    print(runtime.path, flush=True)
''')


def child(tmp_path: Path, *, home: str, shared: Path) -> subprocess.Popen:
    env = {**os.environ, "HANGAR_HOME": str(tmp_path / home), "HANGAR_RUNTIMES_DIR": str(shared),
           "BUILDS": str(tmp_path / "builds"), "RELEASE": str(tmp_path / "release")}
    return subprocess.Popen([sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def fake_uv(builds: list[str], *, fail: bool = False):
    def run(args, *, progress, log):
        if args[0] == "venv":
            folder = Path(args[-1])
            (folder / "bin").mkdir(parents=True)
            (folder / "bin" / "airflow").write_text(f"#!{folder}/bin/python\n")
            builds.append(str(folder))
            return 0, ""
        return (1, "error: no solution found") if fail else (0, "")
    return run


def building_folders(root: Path) -> list[Path]:
    return sorted(root.glob(".*.building"))


def wait_for_building(shared: Path, process: subprocess.Popen) -> None:
    """Until `process` has made its venv and is inside `pip install`, holding the key's lock."""
    deadline = time.monotonic() + 60
    while not building_folders(shared):
        assert time.monotonic() < deadline and process.poll() is None, process.stderr.read() if process.stderr else ""
        time.sleep(0.05)


def test_two_homes_sharing_a_runtimes_dir_build_a_key_once(tmp_path: Path):
    shared = tmp_path / "shared-runtimes"
    first = child(tmp_path, home="home-a", shared=shared)
    wait_for_building(shared, first)
    second = child(tmp_path, home="home-b", shared=shared)
    assert second.stdout is not None
    assert second.stdout.readline() == f"waiting for another build of runtime {KEY}\n"
    (tmp_path / "release").touch()  # the first build may finish now
    outputs = []
    for process in (first, second):
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        outputs.append(out.splitlines())

    assert (tmp_path / "builds").read_text().count("\n") == 1  # built once
    assert outputs[0][-2:] == [f"runtime {KEY} built", str(shared / KEY)]
    assert outputs[1] == [f"runtime {KEY} is cached", str(shared / KEY)]
    assert (shared / KEY / READY_MARKER).read_text() == "3.3.2"
    assert (shared / KEY / "bin" / "airflow").read_text().startswith(f"#!{shared / KEY}/bin/python\n")
    assert building_folders(shared) == []
    assert not (tmp_path / "home-a" / "runtimes").exists() and not (tmp_path / "home-b" / "runtimes").exists()


def test_a_build_killed_midway_leaves_no_runtime_and_the_next_call_rebuilds(tmp_path: Path, monkeypatch):
    shared = tmp_path / "shared-runtimes"
    process = child(tmp_path, home="home-a", shared=shared)
    wait_for_building(shared, process)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)

    assert not (shared / KEY).exists()
    assert [p.name for p in building_folders(shared)] == [f".{KEY}.{venvs._host()}.{process.pid}.building"]

    builds: list[str] = []
    monkeypatch.setattr(venvs, "run_uv", fake_uv(builds))
    runtime = ensure_runtime(root=shared, python="3.11", airflow_version="3.3.2", requirements=None,
                             progress=lambda _: None)
    assert len(builds) == 1
    assert (runtime.path / READY_MARKER).exists()
    assert building_folders(shared) == []  # the dead build's folder went too


def test_a_failed_build_leaves_nothing_under_its_key(tmp_path: Path, monkeypatch):
    builds: list[str] = []
    monkeypatch.setattr(venvs, "run_uv", fake_uv(builds, fail=True))
    with pytest.raises(RuntimeBuildFailed, match="no solution found"):
        ensure_runtime(root=tmp_path, python="3.11", airflow_version="3.3.2", requirements=None, progress=lambda _: None)
    assert len(builds) == 1
    assert not (tmp_path / KEY).exists() and building_folders(tmp_path) == []


def test_a_cached_runtime_is_not_built_again(tmp_path: Path, monkeypatch):
    builds: list[str] = []
    monkeypatch.setattr(venvs, "run_uv", fake_uv(builds))
    for _ in range(2):
        ensure_runtime(root=tmp_path, python="3.11", airflow_version="3.3.2", requirements=None, progress=lambda _: None)
    assert len(builds) == 1


def test_leftovers_of_dead_builds_go_and_a_live_build_stays(tmp_path: Path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        live = tmp_path / f".{KEY}.{venvs._host()}.{sleeper.pid}.building"
        dead = tmp_path / f".{KEY}.{venvs._host()}.{gone.pid}.building"
        legacy = tmp_path / f".{KEY}.building"  # the single name builds used before
        other_key = tmp_path / f".{'0' * 16}.{venvs._host()}.{gone.pid}.building"
        half_published = tmp_path / KEY  # renamed into place, died before its marker
        for folder in (live, dead, legacy, other_key, half_published):
            (folder / "bin").mkdir(parents=True)

        venvs._clear_leftovers(tmp_path, KEY)

        assert live.exists() and other_key.exists()
        assert not dead.exists() and not legacy.exists() and not half_published.exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other_key.name])
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_ready_runtime_is_never_cleared(tmp_path: Path):
    (tmp_path / KEY).mkdir()
    (tmp_path / KEY / READY_MARKER).write_text("3.3.2")
    venvs._clear_leftovers(tmp_path, KEY)
    assert (tmp_path / KEY / READY_MARKER).exists()
