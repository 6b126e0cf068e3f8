"""One supervised process, with supervisor's states.

    STOPPED  --start-->          STARTING   (spawned in its own session, pid file written; see pidfiles)
    STARTING --up start_seconds--> RUNNING  (it stayed up long enough to count as started)
    STARTING --ready()-->        RUNNING    (it proved itself sooner: the web server answered)
    STARTING --ready file written--> RUNNING (a spec with a ready_file: the process said it is ready,
                                   and start_seconds does not count; start() removes an older file)
    STARTING --exited early-->   BACKOFF    (wait grows 1, 2, 4 ... s, then retry)
    BACKOFF  --retries used up--> FATAL     (no more restarts; the environment is UNAVAILABLE)
    RUNNING  --exited-->         BACKOFF    (an unexpected exit counts as a failure too)
    RUNNING  --up stable_seconds--> RUNNING (failures forgotten: it is stable again)

Airflow components import for seconds before they can fail on bad configuration, so
a crash loop can pass start_seconds every time; failures are therefore only
forgotten after stable_seconds, and such a loop still ends FATAL.
    RUNNING  --stop-->           STOPPING   (SIGTERM to the process group)
    RUNNING  --drain-->          STOPPING   (SIGTERM to the leader alone; see drain())
    STOPPING --exited-->         STOPPED
    STOPPING --grace passed-->   STOPPED    (SIGKILL to the process group)

A process is identified by pid *and* create time, so a recycled pid is never
mistaken for ours when a restarted control plane adopts processes from pid files.
The clock is injectable so the state machine can be tested without sleeping.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

import psutil

from hangar.backend import pidfiles
from hangar.backend.identity import RunAs, open_log

log = logging.getLogger(__name__)


class ProcessState(StrEnum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"
    STOPPING = "STOPPING"
    FATAL = "FATAL"


@dataclass(kw_only=True)
class ProcessSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_file: Path
    pid_file: Path
    start_seconds: float = 3.0
    start_retries: int = 3
    stable_seconds: float = 60.0
    stop_grace: float = 20.0
    # the system user it runs as (backend.identity); None: the control plane's own
    run_as: RunAs | None = None
    # a file the process writes once it is ready (a Celery worker on Celery's worker_ready): with
    # one, STARTING becomes RUNNING when this start's process has written it, however long it
    # takes, and not when it has stayed up start_seconds; without, after start_seconds
    ready_file: Path | None = None
    # a stop sends SIGTERM to the leader alone, which ends its own children (Airflow's scheduler
    # its LocalExecutor workers, Celery its pool): a SIGTERM to the whole group can kill a
    # LocalExecutor worker while it holds the task queue's lock, and the scheduler then waits for
    # the others until the stop grace ends (measured: every delete after a DAG run took 20 s)
    stop_leader_first: bool = False

    def digest(self) -> str:
        """What the process was started with (command and environment), as a one-way hash."""
        payload = json.dumps([self.argv, sorted(self.env.items()), str(self.cwd)])
        return hashlib.sha256(payload.encode()).hexdigest()[:32]


@dataclass(kw_only=True)
class ManagedProcess:
    spec: ProcessSpec
    clock: Callable[[], float] = time.monotonic
    state: ProcessState = ProcessState.STOPPED
    pid: int | None = None
    create_time: float | None = None
    failures: int = 0
    restarts: int = 0
    stale: bool = False  # adopted, but started with another spec than this one
    reason: str | None = None
    _started_at: float = 0.0
    _retry_at: float = 0.0
    _stop_deadline: float = 0.0
    _popen: subprocess.Popen | None = field(default=None, repr=False)
    # forks the process from a pre-imported parent: (spec, spawn id, spec digest) -> (pid, create
    # time) once its pid file is written, or None to spawn it here (see backend.forkserver)
    spawner: Callable[[ProcessSpec, str, str], tuple[int, float] | None] | None = field(default=None, repr=False)

    # --- actions ---

    def start(self) -> None:
        """Spawn the process; a kill of the control plane at any step is undone or finished by
        pidfiles.settle() when the next control plane adopts."""
        self.spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        if self.spec.ready_file is not None:  # written by an earlier start: only this one's counts
            self.spec.ready_file.unlink(missing_ok=True)
        digest = self.spec.digest()
        spawn_id = pidfiles.record_intent(self.spec.pid_file, argv=self.spec.argv, spec=digest)
        forked = None
        if self.spawner is not None:
            try:
                forked = self.spawner(self.spec, spawn_id, digest)
            except Exception:  # the fork server misbehaved: start it here as before
                log.exception("forking %s failed; starting it afresh", self.spec.name)
        if forked is not None:  # the fork server wrote the pid file before the child ran
            self._popen = None
            self.pid, self.create_time = forked
        else:
            self._spawn(spawn_id, digest)
        pidfiles.clear_intent(self.spec.pid_file)
        self._started_at = self.clock()
        self.state = ProcessState.STARTING  # STOPPED/BACKOFF -> STARTING: spawned

    def _spawn(self, spawn_id: str, digest: str) -> None:
        run_as = self.spec.run_as
        # the user's own, since a fork server running as that user may open the same log later
        log = open_log(self.spec.log_file, run_as)
        try:
            self._popen = subprocess.Popen(
                self.spec.argv, env={**self.spec.env, pidfiles.SPAWN_ENV: spawn_id}, cwd=self.spec.cwd,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                **(run_as.popen() if run_as is not None else {}),
            )
        except BaseException:
            pidfiles.clear_intent(self.spec.pid_file)
            raise
        finally:
            log.close()
        self.pid = self._popen.pid
        self.create_time = psutil.Process(self.pid).create_time()
        pidfiles.write_pid_file(self.spec.pid_file, pid=self.pid, create_time=self.create_time, argv=self.spec.argv,
                                spec=digest)

    def adopt(self) -> bool:
        """Take over a process a previous control plane started, if it still runs."""
        pidfiles.settle(self.spec.pid_file)
        record = pidfiles.read_record(self.spec.pid_file)
        if record is None or not pidfiles.alive(record["pid"], record["create_time"]):
            return False
        self.pid, self.create_time = record["pid"], record["create_time"]
        # started from another command or environment (an update was cut short): replace it
        self.stale = record.get("spec") != self.spec.digest()
        self.state = ProcessState.RUNNING  # adopted: it has been up longer than start_seconds
        self.failures = 0
        self.reason = None
        return True

    def stop(self) -> None:
        if self.state in (ProcessState.STOPPED, ProcessState.FATAL) or not self.is_alive():
            self._stopped()
            return
        if self.spec.stop_leader_first:
            self._signal_leader(signal.SIGTERM)
        else:
            self._signal(signal.SIGTERM)
        self._stop_deadline = self.clock() + self.spec.stop_grace
        self.state = ProcessState.STOPPING  # RUNNING/STARTING -> STOPPING: SIGTERM sent

    def drain(self, *, grace: float) -> None:
        """Ask the component to finish what it runs, then exit; SIGKILL only after `grace`.

        SIGTERM goes to the leader alone: Airflow's scheduler then leaves its loop and its
        executor waits for running tasks (LocalExecutor.end), while SIGTERM to the whole
        group would reach the task processes and kill them. Airflow takes a second SIGTERM
        as "stop waiting", so a drain is never signalled twice (see watch_drain)."""
        if self.state in (ProcessState.STOPPED, ProcessState.FATAL) or not self.is_alive():
            self._stopped()
            return
        self._signal_leader(signal.SIGTERM)
        self.watch_drain(grace=grace)

    def watch_drain(self, *, grace: float) -> None:
        """Follow a drain that was already asked for (by a previous control plane)."""
        self._stop_deadline = self.clock() + grace
        self.state = ProcessState.STOPPING  # RUNNING -> STOPPING: draining, leader signalled once

    def move_pid_file(self, path: Path) -> None:
        """Keep the record of a process that is on its way out under another name, so its
        successor can take the component's pid file while both run."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.spec.pid_file.exists():
            self.spec.pid_file.replace(path)
        self.spec = replace(self.spec, pid_file=path)

    def stop_and_wait(self, poll: float = 0.2) -> None:
        self.stop()
        while self.state == ProcessState.STOPPING:
            self.tick()
            if self.state == ProcessState.STOPPING:
                time.sleep(poll)

    def restart_now(self) -> None:
        """A deliberate restart (health check failed): counts as a failure."""
        self.stop_and_wait()
        self._fail("restarted because its health check failed")

    # --- observation ---

    def ready(self) -> None:
        """Its owner saw it serve (the web server answered its health check): that proves the
        start better than having stayed up start_seconds."""
        if self.state == ProcessState.STARTING and self.is_alive():
            self.state = ProcessState.RUNNING  # STARTING -> RUNNING: proved ready

    def is_alive(self) -> bool:
        if self.pid is None or self.create_time is None:
            return False
        if self._popen is not None and self._popen.poll() is not None:
            return False
        return pidfiles.alive(self.pid, self.create_time)

    def tick(self) -> None:
        """Advance the state machine; call it periodically."""
        now = self.clock()
        if self.state == ProcessState.STARTING:
            if not self.is_alive():
                self._fail(self._early_exit_text(now))
            elif self.spec.ready_file is not None:
                if self.spec.ready_file.exists():
                    self.state = ProcessState.RUNNING  # STARTING -> RUNNING: it said it is ready
            elif now - self._started_at >= self.spec.start_seconds:
                self.state = ProcessState.RUNNING  # STARTING -> RUNNING: stayed up
        elif self.state == ProcessState.RUNNING:
            if not self.is_alive():
                self._fail(f"exited unexpectedly {self._exit_text()}")
            elif self.failures and now - self._started_at >= self.spec.stable_seconds:
                self.failures = 0  # RUNNING -> RUNNING: stable again
                self.reason = None
        elif self.state == ProcessState.BACKOFF:
            if now >= self._retry_at:
                self.restarts += 1
                self.start()  # BACKOFF -> STARTING: retry
        elif self.state == ProcessState.STOPPING:
            if not self.is_alive():
                self._stopped()  # STOPPING -> STOPPED: exited after SIGTERM
            elif now >= self._stop_deadline:
                log.warning("%s (pid %s) outlived its stop grace; killed", self.spec.name, self.pid)
                self._signal(signal.SIGKILL)
                self._stopped()  # STOPPING -> STOPPED: grace passed, SIGKILL

    # --- internals ---

    def _fail(self, reason: str) -> None:
        self._reap()
        self._kill_remnants()
        self.failures += 1
        self.reason = reason
        if self.failures > self.spec.start_retries:
            self.state = ProcessState.FATAL  # BACKOFF -> FATAL: retries used up
            self.reason = f"{reason}; gave up after {self.failures} failures in a row"
            self._remove_pid_file()
            return
        self._retry_at = self.clock() + min(2 ** (self.failures - 1), 30)
        self.state = ProcessState.BACKOFF  # STARTING/RUNNING -> BACKOFF: exited

    def _stopped(self) -> None:
        self._reap()
        self._kill_remnants()
        self.state = ProcessState.STOPPED
        self.pid = self.create_time = None
        self._remove_pid_file()

    def _early_exit_text(self, now: float) -> str:
        if self.spec.ready_file is not None:
            return f"exited {self._exit_text()} before it was ready ({now - self._started_at:.0f} s after starting)"
        return f"exited {self._exit_text()} within {self.spec.start_seconds:.0f} s of starting"

    def _exit_text(self) -> str:
        if self._popen is not None and self._popen.returncode is not None:
            return f"with code {self._popen.returncode}"
        return ""

    def _reap(self) -> None:
        if self._popen is not None:
            try:
                self._popen.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                pass

    def _kill_remnants(self) -> None:
        """Children the component forked into its group (executor workers, forkservers) die with it."""
        if self.pid is not None and self.create_time is not None:
            pidfiles.kill_group_members(self.pid, born_after=self.create_time)

    def _signal(self, sig: signal.Signals) -> None:
        if self.pid is None:
            return
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def _signal_leader(self, sig: signal.Signals) -> None:
        try:
            os.kill(self.pid, sig)  # type: ignore[arg-type]
        except ProcessLookupError:
            pass

    def _remove_pid_file(self) -> None:
        self.spec.pid_file.unlink(missing_ok=True)
