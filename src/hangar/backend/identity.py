"""The system user an environment's code runs as.

When the control plane runs as root, each environment gets its own unprivileged system user,
`hangar-<id>`, made by Hangar when the environment is created and removed when it is deleted.
Its Airflow components, workers, fork server, pre-flight probes and startup script run as that
user; its folder belongs to it with mode 0700. The control plane's own files (keys, state
database, buckets, other environments) are root's, so the environment's code cannot read them.

Not root (a laptop), there is no other user to switch to: everything runs as the user who
started Hangar, and that user is the trust boundary (README, SECURITY.md).
"""
from __future__ import annotations

import functools
import os
import pwd
import shutil
import stat
import subprocess
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

from hangar.backend import confinement

PREFIX = "hangar-"
_LOCK = threading.Lock()  # useradd and userdel lock /etc/passwd; one at a time from here


class IdentityError(RuntimeError):
    """The system user could not be made or removed."""


@dataclass(frozen=True)
class RunAs:
    name: str
    uid: int
    gid: int
    cgroups: tuple[str, ...] = ()  # cgroup.procs files its processes enter (backend.confinement)
    max_processes: int | None = None  # RLIMIT_NPROC for its processes

    def popen(self) -> dict:
        """Keyword arguments for subprocess.Popen that start a process as this user only, inside
        the environment's limits when it has them."""
        if not self.cgroups and self.max_processes is None:
            return {"user": self.uid, "group": self.gid, "extra_groups": []}
        return {"preexec_fn": functools.partial(confinement.enter, self.cgroups, self.max_processes, self.uid, self.gid)}

    def confined(self, env_id: str, limits: confinement.Limits) -> RunAs:
        """This user with the environment's limits: its cgroups made or updated now."""
        return replace(self, cgroups=confinement.prepare(env_id, limits), max_processes=limits.max_processes)

    def env(self, home: Path) -> dict[str, str]:
        return {"HOME": str(home), "USER": self.name, "LOGNAME": self.name}


def user_name(env_id: str) -> str:
    return PREFIX + env_id.replace("-", "")[:16]  # system user names stay within 32 characters


def lookup(env_id: str) -> RunAs | None:
    return _by_name(user_name(env_id))


def _by_name(name: str) -> RunAs | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return RunAs(name=entry.pw_name, uid=entry.pw_uid, gid=entry.pw_gid)


def _system_user(name: str, comment: str) -> RunAs:
    """The unprivileged system user `name` (no home, no shell), made now if it does not exist."""
    with _LOCK:
        found = _by_name(name)
        if found is not None:
            return found
        _run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
              "--shell", "/usr/sbin/nologin", "--comment", comment, name], what=f"make user {name}")
        found = _by_name(name)
        if found is None:
            raise IdentityError(f"useradd made no user {name}")
        return found


def ensure_user(env_id: str) -> RunAs:
    """The environment's system user, made now if it does not exist yet."""
    return _system_user(user_name(env_id), "Hangar environment")


BUILD_USER = "hangar-build"


def builder() -> RunAs:
    """The system user that installs environments' requirements and asks uv about them: a
    package's build script or `.pth` file runs as it, never as root."""
    return _system_user(BUILD_USER, "Hangar runtime builds")


def give_tree(root: Path, uid: int, gid: int) -> None:
    """chown -R without following links (root's walk over a tree another user could change)."""
    for _, dirs, files, dir_fd in os.fwalk(root, follow_symlinks=False):
        os.fchown(dir_fd, uid, gid)
        for name in (*dirs, *files):
            try:
                os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue


def remove_user(env_id: str) -> None:
    """Remove the environment's system user and its group; nothing to do if there is none."""
    with _LOCK:
        found = lookup(env_id)
        if found is None:
            return
        _end_processes_of(found.uid)  # anything it left running (outside its pid files) ends with it
        _remove_files_of(found.uid)
        _run(["userdel", user_name(env_id)], what=f"remove user {user_name(env_id)}")


SHARED_TEMP = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"))


def _remove_files_of(uid: int) -> None:
    """What the user left in the temporary folders every user shares (sticky, so only its own)."""
    for folder in SHARED_TEMP:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)  # never follows a link
                else:
                    os.unlink(entry.path)
            except OSError:
                continue


def _end_processes_of(uid: int) -> None:
    left = []
    for process in psutil.process_iter(["uids"]):
        uids = process.info["uids"]
        if uids is not None and uid in (uids.real, uids.effective, uids.saved):
            try:
                process.kill()
                left.append(process)
            except psutil.Error:
                continue
    psutil.wait_procs(left, timeout=10)


def hand_over(root: Path, who: RunAs) -> None:
    """Give the environment's folder to its user: owned by it throughout, and 0700 at the top.

    Walked by folder descriptors and never through a symbolic link: the environment's code may
    change the tree while this runs, and must not steer root's chown outside it."""
    give_tree(root, who.uid, who.gid)
    root.chmod(0o700)


def open_plain(path: Path, flags: int, mode: int = 0o640) -> int:
    """A file in a folder an environment's user owns, opened by root: never through a symbolic
    link or a second name of another file (OSError otherwise)."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise OSError(f"{path} is not a plain file of its own")
    return fd


def open_log(path: Path, who: RunAs | None):
    """A component's log for appending (open_plain)."""
    fd = open_plain(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    if who is not None:
        os.fchown(fd, who.uid, who.gid)
    return os.fdopen(fd, "ab")


def can_read(folder: Path, who: RunAs) -> bool:
    """Whether `who` may list and enter `folder` (every folder above it included), as the kernel decides."""
    try:
        test = ["test", "-r", str(folder)] if folder.is_file() else ["test", "-r", str(folder), "-a", "-x", str(folder)]
        result = subprocess.run(test, timeout=30, **who.popen())
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def give(path: Path, who: RunAs | None) -> None:
    """A file or folder the control plane just made inside an environment's folder: to its user."""
    if who is not None:
        os.lchown(path, who.uid, who.gid)


def _run(argv: list[str], *, what: str) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise IdentityError(f"could not {what}: {exc}") from exc
    if result.returncode != 0:
        raise IdentityError(f"could not {what}: {argv[0]} exited {result.returncode}: {result.stderr.strip()[-300:]}")
