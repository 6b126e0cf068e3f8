"""The control plane's side of an environment's fork server (hangar_airflow.forkserver).

A ForkServer is started for one set of inputs (its key: the runtime's Python, the
environment's variables and the bytes of its airflow.cfg) and answers spawns only while
those inputs hold: a configuration change starts a new one first.

    NEW --start--> STARTING --ready line--> READY --end of file or error--> GONE
                   STARTING --exited / timed out--> GONE

warm() asks a READY fork server to import more (the web server's modules) and does not
wait. The answer is read before the next spawn's, so that spawn comes after the imports;
prepare(wait=True) waits for it first, outside the environment's lock.

GONE is final: a spawn asked of it returns None and the caller execs the component as
before (ManagedProcess.start), so a fork server that cannot import Airflow (a broken
airflow_local_settings, say) changes nothing but the time a start takes. Only one spawn
talks to the fork server at a time (its lock). The fork server exits when the control
plane closes its end, or dies: the components it forked run on, named by their pid files.
"""
from __future__ import annotations

import hashlib
import json
import logging
import select
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from hangar.backend.identity import RunAs, open_log
from hangar.backend.pidfiles import SPAWN_ENV
from hangar.backend.plan import LaunchPlan
from hangar.backend.process import ProcessSpec

log = logging.getLogger(__name__)
_PENDING = object()


@dataclass(frozen=True, kw_only=True)
class ForkRequest:
    argv: list[str]  # the component's command: the `airflow` executable and its arguments
    env: dict[str, str]
    cwd: Path
    log_file: Path
    pid_file: Path
    record: dict  # what the pid file holds besides pid and create time

    def message(self) -> bytes:
        """The request line hangar_airflow.forkserver reads."""
        return json.dumps({"argv": self.argv, "env": self.env, "cwd": str(self.cwd), "log": str(self.log_file),
                           "pid_file": str(self.pid_file), "record": self.record}).encode() + b"\n"


def forkserver_key(*, python: Path, env: dict[str, str], cfg: Path, run_as: RunAs | None = None) -> str:
    """What a fork server's imports depend on: a change to any of it needs a new one."""
    try:
        cfg_bytes = cfg.read_bytes()
    except OSError:
        cfg_bytes = b""
    payload = json.dumps([str(python), sorted(env.items()), hashlib.sha256(cfg_bytes).hexdigest(),
                          None if run_as is None else [run_as.uid, run_as.max_processes, list(run_as.cgroups)]])
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


class ForkServer:
    def __init__(self, *, key: str, python: Path, env: dict[str, str], cwd: Path, log_file: Path,
                 extra_args: tuple[str, ...] = (), run_as: RunAs | None = None) -> None:
        self.key = key
        self._run_as = run_as
        self._argv = [str(python), "-m", "hangar_airflow.forkserver", *extra_args]
        self._env, self._cwd, self._log_file = env, cwd, log_file
        self._lock = threading.Lock()
        self._channel: socket.socket | None = None
        self._popen: subprocess.Popen | None = None
        self._reader = None
        self.state = "NEW"
        self.reason: str | None = None
        self._owed = 0  # answers to warm() not read yet

    def start(self) -> None:
        """Spawn the fork server; it imports Airflow meanwhile (ready() waits for that)."""
        ours, theirs = socket.socketpair()
        self._log_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open_log(self._log_file, self._run_as) as out:
                self._popen = subprocess.Popen(
                    [*self._argv, "--fd", str(theirs.fileno())], env=self._env, cwd=self._cwd, stdout=out,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(),),
                    start_new_session=True, **(self._run_as.popen() if self._run_as is not None else {}),
                )
        except OSError as exc:
            ours.close()
            self._gone(f"cannot start: {exc}")
            return
        finally:
            theirs.close()
        self._channel, self._reader = ours, ours.makefile("rb")
        self.state = "STARTING"

    def ready(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the imports to finish; False once GONE."""
        with self._lock:
            if self.state == "STARTING":
                answer = self._read(timeout)
                if answer is _PENDING:
                    if timeout:
                        self._gone(f"not ready within {timeout:g} s")
                elif answer is None or not answer.get("ready"):
                    self._gone(self.reason or "it did not become ready")
                else:
                    self.state = "READY"
            return self.state == "READY"

    def warm(self, name: str) -> bool:
        """Ask a READY fork server to import what component `name` ("web") needs, without
        waiting for it; False if it is not READY."""
        if not self.ready(0):
            return False
        with self._lock:
            if not self._send({"warm": name}):
                return False
            self._owed += 1
            return True

    def spawn(self, request: ForkRequest, *, timeout: float = 30.0) -> tuple[int, float] | None:
        """Fork the component; (pid, create time) once its pid file is written, or None if this
        fork server cannot (the caller then execs the component)."""
        if not self.ready(0):
            return None
        with self._lock:
            if not self._settle(timeout) or not self._send(request.message()):
                return None
            answer = self._read(timeout)
            if answer is _PENDING or answer is None:
                self._gone(self.reason or f"no answer within {timeout:g} s")
                return None
            if "error" in answer:
                log.warning("fork server of %s: %s", self._cwd.name, answer["error"])
                return None
            return int(answer["pid"]), float(answer["create_time"])

    def settle(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for what warm() asked to be imported."""
        with self._lock:
            if self.state == "READY":
                self._settle(timeout)

    def _settle(self, timeout: float) -> bool:
        while self._owed:
            answer = self._read(timeout)
            if answer is _PENDING or answer is None:
                self._gone(self.reason or f"no answer within {timeout:g} s")
                return False
            self._owed -= 1
            if "error" in answer:
                log.warning("fork server of %s could not import ahead: %s", self._cwd.name, answer["error"])
        return True

    def _send(self, message: bytes | dict) -> bool:
        assert self._channel is not None
        if isinstance(message, dict):
            message = json.dumps(message).encode() + b"\n"
        try:
            self._channel.sendall(message)
        except OSError as exc:
            self._gone(f"cannot reach it: {exc}")
            return False
        return True

    def close(self) -> None:
        """Let the fork server go (it exits on end of file); what it forked runs on."""
        with self._lock:
            self._gone(self.reason)
            if self._popen is not None:
                try:
                    self._popen.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._popen.kill()
                    self._popen.wait()

    def _read(self, timeout: float) -> dict | None | object:
        """The next answer; _PENDING if none came within `timeout`, None if the fork server went."""
        assert self._channel is not None and self._reader is not None
        # answers are one line each and none comes unasked, so nothing waits in the reader's buffer
        ready, _, _ = select.select([self._channel], [], [], timeout)
        if not ready:
            return _PENDING
        line = self._reader.readline()
        if not line:
            code = self._popen.poll() if self._popen is not None else None
            self.reason = f"exited{f' with code {code}' if code is not None else ''}; see {self._log_file}"
            return None
        try:
            return json.loads(line)
        except ValueError:
            self.reason = "answered garbage"
            return None

    def _gone(self, reason: str | None) -> None:
        if self.state != "GONE" and reason:
            log.warning("fork server of %s is gone: %s", self._cwd.name, reason)
        self.state, self.reason = "GONE", reason
        for closable in (self._reader, self._channel):
            if closable is not None:
                try:
                    closable.close()
                except OSError:
                    pass
        self._reader = self._channel = None


class Forker:
    """Which fork server one environment's components come from.

    prepare() starts the fork server the plan needs (a new one when its key changed) and may
    wait for it; spawn(), which ManagedProcess.start calls, never waits: it forks from a READY
    fork server with the right key, and otherwise returns None (exec as before) after starting
    the one that is missing, so a restart from the monitor thread stays quick."""

    extra_args: tuple[str, ...] = ()  # for ForkServer (tests give another entry and preload)

    def __init__(self, plan: LaunchPlan) -> None:
        self.plan = plan
        self.server: ForkServer | None = None
        self._lock = threading.Lock()

    def prepare(self, plan: LaunchPlan, *, wait: bool) -> None:
        """Take `plan` and make sure its fork server runs; with `wait`, until it has imported
        Airflow or given up. Call it without holding the environment's lock."""
        server = self._server(plan)
        if server is not None and wait:
            server.ready(plan.fork_ready_timeout)
            server.settle(plan.fork_ready_timeout)  # what warm() asked for, so spawn() need not wait for it

    def spawn(self, spec: ProcessSpec, spawn_id: str, digest: str) -> tuple[int, float] | None:
        server = self._server(self.plan)
        if server is None:
            return None
        request = ForkRequest(argv=spec.argv, env={**spec.env, SPAWN_ENV: spawn_id}, cwd=spec.cwd,
                              log_file=spec.log_file, pid_file=spec.pid_file,
                              record={"argv": spec.argv, "spec": digest})
        return server.spawn(request)

    def warm(self, name: str) -> None:
        """Have the current fork server import what `name` needs while the caller does other
        work; the next spawn from it waits for that."""
        with self._lock:
            server = self.server
        if server is not None:
            server.warm(name)

    def close(self) -> None:
        with self._lock:
            if self.server is not None:
                self.server.close()
                self.server = None

    def _server(self, plan: LaunchPlan) -> ForkServer | None:
        with self._lock:
            self.plan = plan
            if not plan.forks:
                return None
            key = forkserver_key(python=plan.python, env=plan.env, cfg=_cfg_path(plan), run_as=plan.run_as)
            if self.server is not None and self.server.key == key:
                return self.server  # a GONE one too: its inputs failed once, so they start fresh
            if self.server is not None:
                self.server.close()
            self.server = ForkServer(key=key, python=plan.python, env=plan.env, cwd=plan.root,
                                     log_file=plan.root / "logs" / "components" / "forkserver.log",
                                     extra_args=self.extra_args, run_as=plan.run_as)
            self.server.start()
            return self.server


def _cfg_path(plan: LaunchPlan) -> Path:
    return Path(plan.env.get("AIRFLOW_CONFIG") or Path(plan.env.get("AIRFLOW_HOME", plan.root)) / "airflow.cfg")
