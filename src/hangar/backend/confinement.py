"""Process and memory limits for one environment: its own cgroup where the kernel offers one,
RLIMIT_NPROC on its system user always.

Each isolated environment (backend.identity) gets a cgroup named `hangar-<id>` under the
control plane's own, in the `pids` and `memory` controllers (cgroup v1) or the unified
hierarchy (cgroup v2, when the parent delegates both controllers). `pids.max` bounds the tasks
(processes and threads) of everything the environment runs; the memory limit bounds their
memory, and the kernel's OOM killer then acts inside that cgroup only. A process enters the
cgroups before it drops to the environment's user (`enter`, a subprocess preexec), so nothing
it forks can start outside them; its children inherit them.

RLIMIT_NPROC is set too, to the same number: the kernel counts it per real uid, and the
environment's user is its own, so it holds the same bound where no cgroup can be made.
"""
from __future__ import annotations

import logging
import os
import resource
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

PREFIX = "hangar-"
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Limits:
    max_processes: int  # tasks: processes and their threads
    memory_bytes: int


@dataclass(frozen=True)
class Cgroup:
    """One controller's folder for an environment, and the files that hold its limit."""
    folder: Path
    limit_file: str  # pids.max, memory.limit_in_bytes or memory.max
    value: int

    @property
    def procs(self) -> Path:
        return self.folder / "cgroup.procs"


def _own_paths() -> dict[str, str]:
    """controller -> this process's cgroup path ("" -> the unified hierarchy's)."""
    paths: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return paths
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _mounts() -> tuple[dict[str, Path], Path | None]:
    """v1 controller -> its mount point, and the v2 mount point."""
    v1: dict[str, Path] = {}
    v2 = None
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return v1, v2
    for line in lines:
        fields = line.split()
        if len(fields) < 4:
            continue
        if fields[2] == "cgroup2":
            v2 = Path(fields[1])
        elif fields[2] == "cgroup":
            for option in fields[3].split(","):
                if option in ("pids", "memory"):
                    v1[option] = Path(fields[1])
    return v1, v2


def _plan(env_id: str, limits: Limits) -> list[Cgroup]:
    """Where the environment's cgroups go on this machine; [] if no controller is usable."""
    name = PREFIX + env_id.replace("-", "")[:16]
    own = _own_paths()
    v1, v2 = _mounts()
    if "pids" in v1 and "memory" in v1:
        return [Cgroup(v1["pids"] / own.get("pids", "/").lstrip("/") / name, "pids.max", limits.max_processes),
                Cgroup(v1["memory"] / own.get("memory", "/").lstrip("/") / name, "memory.limit_in_bytes",
                       limits.memory_bytes)]
    if v2 is not None and "" in own:
        parent = v2 / own[""].lstrip("/")
        try:
            delegated = set((parent / "cgroup.subtree_control").read_text().split())
        except OSError:
            return []
        if {"pids", "memory"} <= delegated:
            return [Cgroup(parent / name, "pids.max", limits.max_processes),
                    Cgroup(parent / name, "memory.max", limits.memory_bytes)]
    return []


def prepare(env_id: str, limits: Limits) -> tuple[str, ...]:
    """Make (or update) the environment's cgroups; the cgroup.procs files a process enters.

    Empty when this machine offers none the control plane may make: RLIMIT_NPROC alone then
    bounds the processes, and memory is not bounded (README, "Isolation")."""
    entered: list[str] = []
    for cgroup in _plan(env_id, limits):
        try:
            cgroup.folder.mkdir(exist_ok=True)
        except OSError as exc:
            log.warning("no cgroup for environment %s at %s: %s", env_id, cgroup.folder, exc)
            return ()
        try:
            (cgroup.folder / cgroup.limit_file).write_text(str(cgroup.value))
        except OSError as exc:  # a memory limit below what runs now is refused (EBUSY): the old one holds
            log.warning("environment %s: %s kept its value (%s)", env_id, cgroup.folder / cgroup.limit_file, exc)
        if str(cgroup.procs) not in entered:
            entered.append(str(cgroup.procs))
    return tuple(entered)


def remove(env_id: str) -> None:
    """Remove the environment's cgroups once its processes are gone; anything left is killed first."""
    for cgroup in _plan(env_id, Limits(0, 0)):
        if not cgroup.folder.is_dir():
            continue
        try:
            left = [int(pid) for pid in cgroup.procs.read_text().split()]
        except OSError:
            left = []
        doomed = []
        for pid in left:
            try:
                doomed.append(psutil.Process(pid))
                doomed[-1].kill()
            except psutil.Error:
                pass
        psutil.wait_procs(doomed, timeout=10)
        try:
            cgroup.folder.rmdir()
        except OSError as exc:  # a process still exiting: the next delete or restart tries again
            log.warning("could not remove cgroup %s: %s", cgroup.folder, exc)


def enter(procs: tuple[str, ...], max_processes: int | None, uid: int, gid: int) -> None:
    """Run in the child between fork and exec, still as root: into the cgroups, then the limit,
    then down to the environment's user and group alone."""
    for path in procs:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, b"0")  # 0: the writing process itself
        finally:
            os.close(fd)
    if max_processes is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (max_processes, max_processes))
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
