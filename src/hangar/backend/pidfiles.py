"""What a control plane leaves on disk so that the next one finds every process it spawned.

A control plane can be killed at any instant of a spawn. Between Popen and the pid file
the child already runs in its own session, so a pid file alone would let it escape. A
spawn therefore goes through four steps (ManagedProcess.start):

    1. intent    run/<name>.spawn: a fresh spawn id, the spec digest, the argv
    2. Popen     the child's environment carries HANGAR_SPAWN_ID=<spawn id>
    3. pid file  run/<name>.pid: pid, create time, argv, spec digest
    4. done      the intent is removed

A component forked from its environment's fork server (backend.forkserver) takes steps 2
and 3 in the fork server: it forks the child, writes the pid file, and only then lets the
child run. The fork server is not the control plane's child in any sense a kill reaches, so
a control plane killed after asking finds the pid file written by the time it restarts.

and settle() turns whatever a kill left behind into the state after step 4, or before step 1:

    no live process carries the intent's id    -> intent dropped   (killed before Popen, or the child died)
    the child runs, the pid file names it      -> intent dropped   (killed after the pid file)
    the child runs, no pid file or a dead one  -> pid file written (killed after Popen): the child is adopted
    the child runs, the pid file names another live process -> the child's group is killed

Invariants:
- An intent is on disk, fsynced, before its child exists, and goes only after the child's pid
  file is there: every running process Hangar spawned is named by a pid file or an intent.
- The spawned child is the process that leads its own session, carries the spawn id, and
  whose parent does not carry it. Airflow's own children inherit the variable but do not
  lead a session, or have a parent that carries it; the startup script does not get it.
- A child is found once it has exec'd (its environment is then the one Popen gave it); the
  next control plane starts long after that instant.
- A pid file that settle() writes holds the intent's spec digest, so adoption still
  replaces a process that was started with another command or environment.
- Records are written to a temporary file, fsynced and renamed: a reader sees a whole
  record or none.
- A process is identified by pid and create time, so a recycled pid is never taken for ours.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import time
from pathlib import Path

import psutil

from hangar.files import write_atomically

SPAWN_ENV = "HANGAR_SPAWN_ID"  # hangar_airflow.launch keeps it across the startup script


def intent_path(pid_file: Path) -> Path:
    return pid_file.with_suffix(".spawn")


def record_intent(pid_file: Path, *, argv: list[str], spec: str) -> str:
    """Write the intent to spawn the process `pid_file` will name; return its spawn id."""
    spawn_id = secrets.token_hex(16)
    _write_atomically(intent_path(pid_file), {"spawn": spawn_id, "argv": argv, "spec": spec})
    return spawn_id


def clear_intent(pid_file: Path) -> None:
    intent_path(pid_file).unlink(missing_ok=True)


def write_pid_file(pid_file: Path, *, pid: int, create_time: float, argv: list[str], spec: str) -> None:
    _write_atomically(pid_file, {"pid": pid, "create_time": create_time, "argv": argv, "spec": spec})


def read_record(path: Path) -> dict | None:
    """The record in `path`, or None.

    A file that another user wrote (an environment's fork server, as the environment's user)
    counts only when the process it names is alive and that user's: the environment's code can
    write there too, and must not make the control plane signal or adopt anyone else's process."""
    try:
        owner = path.stat().st_uid
        record = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if owner == os.geteuid():
        return record
    try:
        if psutil.Process(int(record["pid"])).uids().real == owner:
            return record
    except (KeyError, TypeError, ValueError, psutil.Error):
        pass
    return None


def settle(pid_file: Path) -> None:
    """Finish or undo the spawn a killed control plane left half done for `pid_file`."""
    path = intent_path(pid_file)
    if not path.exists():
        return
    intent = read_record(path)
    child = find_spawned(intent["spawn"]) if intent is not None else None
    if child is not None:
        record = read_record(pid_file)
        if record is None or not alive(record["pid"], record["create_time"]):
            write_pid_file(pid_file, pid=child.pid, create_time=child.create_time(), argv=intent["argv"],
                           spec=intent["spec"])  # killed after Popen -> named: the child is adopted
        elif record["pid"] != child.pid:
            _kill_group(child)  # another live process holds the name -> the child is gone
    path.unlink(missing_ok=True)  # no child, or named already -> no intent


def settle_all(run_dir: Path) -> None:
    """settle() every spawn left half done in `run_dir` (a worker may be named by its intent alone)."""
    for intent in sorted(run_dir.glob("*.spawn")):
        settle(intent.with_suffix(".pid"))


def find_spawned(spawn_id: str) -> psutil.Process | None:
    """The live process spawned with `spawn_id` (see the invariants), or None."""
    found = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) != process.pid or not _carries(process, spawn_id):
                continue
            parent = process.parent()
            if parent is None or not _carries(parent, spawn_id):
                found.append((process.create_time(), process))
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return min(found, key=lambda pair: pair[0])[1] if found else None


def _carries(process: psutil.Process, spawn_id: str) -> bool:
    try:
        return process.environ().get(SPAWN_ENV) == spawn_id
    except psutil.Error:  # a zombie, or another user's process
        return False


def alive(pid: int, create_time: float) -> bool:
    try:
        process = psutil.Process(pid)
        return abs(process.create_time() - create_time) < 0.01 and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_group_members(pgid: int, *, born_after: float) -> None:
    """SIGKILL what is left of a process group whose leader has exited.

    Only processes started after the leader are touched, so a recycled group id
    never takes an unrelated process with it."""
    for process in psutil.process_iter(["create_time"]):
        try:
            if os.getpgid(process.pid) == pgid and process.info["create_time"] >= born_after - 0.01:
                process.kill()
        except (ProcessLookupError, psutil.Error):
            continue


def kill_group_from_pid_file(pid_file: Path, *, grace: float = 10.0) -> None:
    """Stop whatever a pid file names, when no ManagedProcess holds it (cleanup after a crash)."""
    record = read_record(pid_file)
    if record is None:
        return
    if alive(record["pid"], record["create_time"]):
        try:
            os.killpg(record["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and alive(record["pid"], record["create_time"]):
            time.sleep(0.2)
    kill_group_members(record["pid"], born_after=record["create_time"])
    pid_file.unlink(missing_ok=True)


def _kill_group(process: psutil.Process) -> None:
    """SIGKILL a spawned process, its group, and children that left the group."""
    try:
        descendants = process.children(recursive=True)
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, psutil.Error):
        return
    for descendant in descendants:
        try:
            descendant.kill()
        except psutil.Error:
            continue


def _write_atomically(path: Path, record: dict) -> None:
    write_atomically(path, json.dumps(record).encode(), durable=True)
