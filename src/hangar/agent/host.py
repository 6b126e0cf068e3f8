"""JoinedHost: this host runs Celery workers for an environment of a control plane elsewhere.

It fetches the worker bundle (hangar.schemas.worker_bundle), builds the same runtime the control
plane built, unpacks the DAGs and plugins, makes airflow.cfg its own and runs `airflow celery
worker` on the environment's queue under Hangar's process supervisor (hangar.backend.process), so
a crashed worker is started again with supervisor's backoff. Files live in
<home>/environments/<name>/ (hangar.runtime.airflow_config.EnvironmentLayout, joined_host=True).

While it runs:
- heartbeats go out from a thread of their own (hangar.agent.heartbeat);
- every `refresh_seconds` the bundle is fetched again: new DAGs or plugins are swapped in by a
  link; a changed configuration, secret, runtime or startup script starts a new worker first and
  then retires the old one by warm shutdown.

It stops only by Celery's warm shutdown (SIGTERM to the worker's leader alone: it takes no new
task and finishes what it runs), when the token is revoked or a stop is requested; asked twice,
it stops the worker at once, killing its tasks. A worker left running by a join that was killed
(SIGKILL) is adopted by the next join with the same home.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from hangar.agent import REFRESH_SECONDS, state
from hangar.agent.bundle import install_part, runtime_for, worker_spec
from hangar.agent.client import ControlPlane
from hangar.agent.errors import ControlPlaneUnreachable, JoinFailed, JoinRefused
from hangar.agent.heartbeat import Heartbeats
from hangar.agent.logs import file_size, log_tail, read_from, say
from hangar.backend.pidfiles import settle_all
from hangar.backend.process import ManagedProcess, ProcessSpec, ProcessState
from hangar.errors import HangarError
from hangar.runtime import remote_worker
from hangar.runtime.airflow_config import EnvironmentLayout
from hangar.runtime.venvs import Runtime
from hangar.schemas.worker_bundle import WorkerBundle
from hangar.settings import Settings

# a worker that has not said "ready" by then gets its log's last lines shown (broker or database unreachable?)
READY_WARNING_SECONDS = 120.0


@dataclass(kw_only=True)
class JoinedHost:
    plane: ControlPlane
    layout: EnvironmentLayout
    runtimes: Path
    hostname: str
    concurrency: int | None  # None: the environment's worker_concurrency
    drain_seconds: float
    refresh_seconds: float = REFRESH_SECONDS
    settings: Settings = field(default_factory=Settings)
    # the address the control plane reaches this host by: its tasks' hostname, for their logs
    address: str | None = None

    def __post_init__(self) -> None:
        self.applied = state.Applied()
        self.bundle: WorkerBundle | None = None
        self.current: ManagedProcess | None = None
        self.draining: list[ManagedProcess] = []
        self.index = 0  # the last worker number used (node <hostname>-<n>@<environment id>)
        self.lock = threading.RLock()
        self.wake = threading.Event()
        self.stop_reason: str | None = None
        self.force = False
        self.revoked = False
        self._ready_seen: dict[str, int] = {}  # worker name -> log offset while it has not said "ready"
        self._started_at: dict[str, float] = {}
        self._unreachable = False

    # --- entry points ---

    def request_stop(self, reason: str) -> None:
        """Warm shutdown; asked twice, the worker is stopped at once."""
        with self.lock:
            if self.stop_reason is not None:
                self.force = True
            else:
                self.stop_reason = reason
        self.wake.set()

    def run(self) -> None:
        bundle = self.plane.bundle()  # a bad token fails here, before anything is built
        self.layout.create()
        self.adopt(bundle)
        self.apply(bundle)
        if self.stop_reason is not None and not self.processes():
            say(f"stopped before a worker ran: {self.stop_reason}")
            return
        beats = Heartbeats(self)
        beats.start()
        try:
            self._loop()
        finally:
            beats.finish()

    def processes(self) -> list[ManagedProcess]:
        """The worker that takes tasks, and those still finishing theirs."""
        return [p for p in [self.current, *self.draining] if p is not None]

    # --- applying a bundle ---

    def apply(self, bundle: WorkerBundle) -> None:
        """Make this host run `bundle`: runtime, files, configuration, and a worker with them."""
        if self.bundle is None or bundle.environment_id != self.bundle.environment_id:
            say(f"joining {bundle.environment} ({bundle.environment_id}), revision {bundle.revision}, Airflow "
                f"{bundle.airflow_version}, queue {bundle.queue}")
            for warning in bundle.warnings:
                say(f"warning: {warning}")
        runtime = runtime_for(bundle, root=self.runtimes, current=self.applied.runtime)
        if bundle.dags_sha256 != self.applied.dags or not self.layout.dags_link.exists():
            install_part(self.plane, self.layout, part="dags", digest=bundle.dags_sha256, parent=self.layout.dags,
                         link=self.layout.dags_link)
            self.applied.dags = bundle.dags_sha256
        if bundle.plugins_sha256 != self.applied.plugins or not self.layout.plugins_link.exists():
            install_part(self.plane, self.layout, part="plugins", digest=bundle.plugins_sha256,
                         parent=self.layout.plugins, link=self.layout.plugins_link)
            self.applied.plugins = bundle.plugins_sha256
        cfg = remote_worker.localize_cfg(bundle.airflow_cfg, layout=self.layout)
        with self.lock:
            self.bundle = bundle
            self.applied.runtime = runtime
        state.save(self.layout, environment_id=bundle.environment_id, applied=self.applied)
        spec = self._spec(bundle, runtime, cfg, index=self.index or 1)
        if self.current is None and self.index:  # a worker an earlier join left running
            leftover = ManagedProcess(spec=spec)
            if leftover.adopt():
                if not leftover.stale:
                    self.current = leftover
                    say(f"adopted {spec.name} (pid {leftover.pid}), left running by an earlier join")
                    return
                self._retire(leftover, why="an earlier join left it running with another configuration")
                spec = self._spec(bundle, runtime, cfg, index=self.index + 1)
        elif self.current is not None:
            if self.current.spec.digest() == spec.digest():
                return
            spec = self._spec(bundle, runtime, cfg, index=self.index + 1)
        if self.stop_reason is not None:  # asked to stop while this was being prepared: start nothing
            return
        remote_worker.write_cfg(self.layout, cfg)  # read by a worker when it starts, and by each Airflow 2 task
        self._start(spec)

    def _spec(self, bundle: WorkerBundle, runtime: Runtime, cfg: str, *, index: int) -> ProcessSpec:
        return worker_spec(bundle, runtime, cfg, index=index, layout=self.layout, hostname=self.hostname,
                           concurrency=self.concurrency, plugins=self.applied.plugins, settings=self.settings,
                           address=self.address)

    def _start(self, spec: ProcessSpec) -> None:
        """Start a worker with `spec`; the one it replaces drains once it runs."""
        process = ManagedProcess(spec=spec)
        offset = spec.log_file.stat().st_size if spec.log_file.exists() else 0
        process.start()
        with self.lock:
            old, self.current = self.current, process
            self.index = int(spec.name.removeprefix("worker-"))
            self._ready_seen[spec.name] = offset
            self._started_at[spec.name] = time.monotonic()
        node = spec.argv[spec.argv.index("--celery-hostname") + 1]
        concurrency = spec.argv[spec.argv.index("--concurrency") + 1]
        say(f"worker {node} started (pid {process.pid}, concurrency {concurrency}); log: {spec.log_file}")
        if old is not None:
            self._retire(old, why=f"replaced by {node}")

    def _retire(self, process: ManagedProcess, *, why: str) -> None:
        running = remote_worker.running_tasks(process.pid)
        process.move_pid_file(self.layout.run / "draining" / f"{process.spec.name}-{process.pid}.pid")
        say(f"{process.spec.name} (pid {process.pid}) leaves, {why}: warm shutdown, its {running} running task(s) "
            "finish first")
        process.drain(grace=self.drain_seconds)
        with self.lock:
            self.draining.append(process)

    def adopt(self, bundle: WorkerBundle) -> None:
        """What a killed join left: draining workers are followed to their end; the newest running
        one is kept by apply() if nothing changed since, and any other is retired."""
        settle_all(self.layout.run)  # a worker the killed join spawned may be named only by its intent
        for pid_file in sorted((self.layout.run / "draining").glob("*.pid")):
            process = self._left(pid_file, name=pid_file.stem.rsplit("-", 1)[0])
            if process.adopt():
                process.watch_drain(grace=self.drain_seconds)  # signalled once already; a second SIGTERM is not a drain
                self.draining.append(process)
                say(f"following {process.spec.name} (pid {process.pid}), left draining by an earlier join")
            else:
                pid_file.unlink(missing_ok=True)
        live: list[ManagedProcess] = []
        for pid_file in self.layout.run.glob("worker-*.pid"):
            process = self._left(pid_file, name=pid_file.stem)
            if process.adopt():
                live.append(process)
            else:
                pid_file.unlink(missing_ok=True)
        live.sort(key=lambda p: int(p.spec.name.removeprefix("worker-")))
        for process in live[:-1]:
            self._retire(process, why="an earlier join left it running")
        if live:
            self.index = int(live[-1].spec.name.removeprefix("worker-"))
        applied = state.load(self.layout)
        if applied.get("environment_id") == bundle.environment_id:
            self.applied.dags, self.applied.plugins = applied.get("dags"), applied.get("plugins")

    def _left(self, pid_file: Path, *, name: str) -> ManagedProcess:
        """A worker an earlier join left, known only by its pid file."""
        return ManagedProcess(spec=ProcessSpec(name=name, argv=[], env={}, cwd=self.layout.root,
                                               log_file=Path(os.devnull), pid_file=pid_file))

    # --- the loop ---

    def _loop(self) -> None:
        next_refresh = time.monotonic() + self.refresh_seconds
        forced = False
        while True:
            self._tick()
            with self.lock:
                reason, force = self.stop_reason, self.force
            if reason is not None and self.current is not None:
                self._retire_current(why=reason)
            if force and not forced:
                forced = True
                say("stopping now: the running tasks are killed")
                for process in self.processes():
                    process.stop()
            if reason is not None and not self.processes():
                say(f"stopped: {reason}")
                return
            if reason is None and time.monotonic() >= next_refresh:
                next_refresh = time.monotonic() + self.refresh_seconds
                self._refresh()
            self._watch_ready()
            self.wake.wait(0.5)
            self.wake.clear()

    def _retire_current(self, *, why: str) -> None:
        with self.lock:
            process, self.current = self.current, None
        if process is not None:
            self._retire(process, why=why)

    def _tick(self) -> None:
        with self.lock:
            processes = self.processes()
        for process in processes:
            before = process.state
            process.tick()
            if process is self.current and process.state == ProcessState.BACKOFF and before != ProcessState.BACKOFF:
                say(f"{process.spec.name} {process.reason}; starting it again")
            if process is self.current and process.state == ProcessState.FATAL:
                raise JoinFailed(f"the worker keeps failing: {process.reason}; {log_tail(process.spec.log_file)}")
            if process is self.current and process.state == ProcessState.STARTING and before == ProcessState.BACKOFF:
                self._ready_seen[process.spec.name] = file_size(process.spec.log_file)
                self._started_at[process.spec.name] = time.monotonic()
        with self.lock:
            for process in [p for p in self.draining if p.state == ProcessState.STOPPED]:
                self.draining.remove(process)
                say(f"{process.spec.name} has finished its tasks and exited")

    def _refresh(self) -> None:
        try:
            bundle = self.plane.bundle()
            self.apply(bundle)
        except JoinRefused as exc:
            if exc.token_rejected:
                self.cut_off(exc.message)
            else:
                say(f"the control plane refused the bundle, keeping what runs: {exc.message}")
        except ControlPlaneUnreachable as exc:
            self.unreachable(exc.message)
        except HangarError as exc:  # a runtime that does not build, an archive that does not unpack
            say(f"could not follow the environment's change, keeping what runs: {exc.message}")

    def _watch_ready(self) -> None:
        for name, offset in list(self._ready_seen.items()):
            process = next((p for p in self.processes() if p.spec.name == name), None)
            if process is None:
                self._ready_seen.pop(name)
                continue
            text = read_from(process.spec.log_file, offset)
            if " ready." in text:
                self._ready_seen.pop(name)
                say(f"{name} is ready: it takes tasks from {self.bundle.queue if self.bundle else 'its queue'}")
            elif time.monotonic() - self._started_at.get(name, time.monotonic()) > READY_WARNING_SECONDS:
                self._ready_seen.pop(name)
                say(f"warning: {name} has not said it is ready after {READY_WARNING_SECONDS:.0f} s; "
                    f"{log_tail(process.spec.log_file)}")

    # --- what the control plane says ---

    def cut_off(self, message: str) -> None:
        """The token was revoked: stop (warm shutdown), saying so once."""
        with self.lock:
            first = not self.revoked
            self.revoked = True
        if first:
            say(f"the control plane cut this host off: {message}")
            self.request_stop("the worker token was revoked")

    def unreachable(self, message: str) -> None:
        if not self._unreachable:
            self._unreachable = True
            say(f"warning: {message}; the worker keeps running, trying again")

    def reachable(self) -> None:
        if self._unreachable:
            self._unreachable = False
            say("the control plane answers again")
