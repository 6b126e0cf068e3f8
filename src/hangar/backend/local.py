"""The local backend: every environment's components as supervised processes.

A monitor thread ticks every process, probes the web component over HTTP and
reports each environment's health through a callback; it never raises, so one
broken environment cannot stop the others from being watched. Processes run in
their own sessions with pid files, so they outlive the control plane, and the
next control plane adopts them instead of starting duplicates.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

from hangar.backend.components import REPLACE_ORDER, Component, components_for, web_component
from hangar.backend.process import ManagedProcess, ProcessSpec, ProcessState, kill_group_from_pid_file

log = logging.getLogger(__name__)

# A busy machine can miss one probe: the web component counts as unhealthy only after
# its probes have failed for this long, and is restarted after the longer period.
WEB_UNHEALTHY_SECONDS = 15.0
WEB_UNHEALTHY_RESTART_SECONDS = 90.0


@dataclass(frozen=True, kw_only=True)
class Health:
    healthy: bool
    fatal: bool
    reason: str | None
    components: list[dict]
    # components that failed recently and have not been stable since
    flapping: tuple[str, ...] = ()


@dataclass(kw_only=True)
class LaunchPlan:
    """Everything needed to (re)start one environment's processes."""

    env_id: str
    major: int
    airflow_bin: Path
    env: dict[str, str]
    root: Path
    web_port: int
    start_seconds: float
    start_retries: int
    stable_seconds: float
    # extra environment per component name (its log level, the digest of the configuration it reads)
    component_env: dict[str, dict[str, str]] = field(default_factory=dict)
    # the command that starts a component: the startup-script launcher around `airflow`, if any
    wrapper: list[str] = field(default_factory=list)
    # how long a draining scheduler may take to finish its running tasks
    drain_seconds: float = 240.0


class EnvironmentProcesses:
    def __init__(self, plan: LaunchPlan) -> None:
        self.plan = plan
        self.lock = threading.RLock()
        self.web = web_component(plan.major)
        self.components: dict[str, Component] = {c.name: c for c in components_for(plan.major)}
        self.processes: dict[str, ManagedProcess] = {
            c.name: ManagedProcess(spec=self._spec(c)) for c in self.components.values()
        }
        # replaced components that are finishing their work (see Component.replace)
        self.draining: list[ManagedProcess] = []
        self._web_failing_since: float | None = None
        self.web_ok = False

    def _spec(self, component: Component) -> ProcessSpec:
        root = self.plan.root
        return ProcessSpec(
            name=component.name,
            argv=[*self.plan.wrapper, str(self.plan.airflow_bin), *component.args],
            env={**self.plan.env, **self.plan.component_env.get(component.name, {})},
            cwd=root,
            log_file=root / "logs" / "components" / f"{component.name}.log",
            pid_file=root / "run" / f"{component.name}.pid",
            start_seconds=self.plan.start_seconds,
            start_retries=self.plan.start_retries,
            stable_seconds=self.plan.stable_seconds,
        )

    def start(self, *, adopt: bool) -> list[str]:
        """Start every component that is not already running; return the adopted ones."""
        adopted = []
        with self.lock:
            for name, process in self.processes.items():
                if adopt and process.adopt():
                    adopted.append(name)
                elif not process.is_alive():
                    process.start()
            if adopt:
                self._adopt_draining()
        return adopted

    def _adopt_draining(self) -> None:
        """Drains a previous control plane started go on; they were signalled once already."""
        for pid_file in sorted(self._draining_dir.glob("*.pid")):
            name = pid_file.stem.rsplit("-", 1)[0]
            component = self.components.get(name)
            if component is None or any(p.spec.pid_file == pid_file for p in self.draining):
                continue
            process = ManagedProcess(spec=replace(self._spec(component), pid_file=pid_file))
            if process.adopt():
                process.watch_drain(grace=self.plan.drain_seconds)
                self.draining.append(process)
            else:
                pid_file.unlink(missing_ok=True)

    @property
    def _draining_dir(self) -> Path:
        return self.plan.root / "run" / "draining"

    def changed(self, plan: LaunchPlan) -> list[str]:
        """Components whose command or environment `plan` changes, in REPLACE_ORDER."""
        with self.lock:
            previous, self.plan = self.plan, plan
            try:
                differ = {n for n, c in self.components.items() if self.processes[n].spec != self._spec(c)}
            finally:
                self.plan = previous
        return [n for n in REPLACE_ORDER if n in differ]

    def use(self, plan: LaunchPlan) -> None:
        """Take `plan` for every later (re)start; nothing running is touched."""
        with self.lock:
            self.plan = plan

    def replace(self, name: str) -> None:
        """Start `name` afresh from the current plan; the old process drains, overlaps or stops
        first, as its Component says. No task is killed: the scheduler drains."""
        component = self.components[name]
        with self.lock:
            old = self.processes[name]
            first = component.replace == "stop-first" or not old.is_alive()
            if first:
                old.stop()
        while first:  # the lock is let go between checks, so the monitor keeps watching the rest
            with self.lock:
                old.tick()
                if old.state != ProcessState.STOPPING:
                    break
            time.sleep(0.2)
        with self.lock:
            if not first:
                old.move_pid_file(self._draining_dir / f"{name}-{old.pid}.pid")
                if component.replace == "drain":
                    old.drain(grace=self.plan.drain_seconds)
                else:
                    old.stop()
                self.draining.append(old)
            if name == self.web:
                self.web_ok, self._web_failing_since = False, None
            new = ManagedProcess(spec=self._spec(component))
            self.processes[name] = new
            new.start()

    def stop(self, *, drain: bool = False) -> None:
        """Stop every component; with `drain`, the scheduler's running tasks finish first."""
        if drain:
            draining = [self.processes[n] for n, c in self.components.items() if c.replace == "drain"]
            with self.lock:
                for process in draining:
                    process.drain(grace=self.plan.drain_seconds)
            while any(p.state == ProcessState.STOPPING for p in draining):
                with self.lock:
                    for process in draining:
                        process.tick()
                time.sleep(0.5)
        with self.lock:
            # the web server last, so the UI reports on the others while they drain
            order = [n for n in self.processes if n != self.web] + [self.web]
            for name in order:
                self.processes[name].stop()
            for process in self.draining:
                process.stop()
            for name in order:
                self.processes[name].stop_and_wait()
            for process in self.draining:
                process.stop_and_wait()
            self.draining.clear()
            for component in self.components.values():
                kill_group_from_pid_file(self._spec(component).pid_file)
            for pid_file in self._draining_dir.glob("*.pid"):
                kill_group_from_pid_file(pid_file)

    def probe_web(self, client: httpx.Client) -> bool:
        path = self.components[self.web].health_path
        try:
            response = client.get(f"http://127.0.0.1:{self.plan.web_port}{path}", timeout=3.0)
            return response.status_code == 200
        except httpx.HTTPError:
            return False

    def tick(self, client: httpx.Client) -> Health:
        with self.lock:
            for process in self.processes.values():
                process.tick()
            for process in self.draining:
                process.tick()
            self.draining = [p for p in self.draining if p.state == ProcessState.STOPPING]
            web = self.processes[self.web]
            answered = web.state in (ProcessState.RUNNING, ProcessState.STARTING) and self.probe_web(client)
            now = time.monotonic()
            if answered:
                self.web_ok, self._web_failing_since = True, None
            elif web.state == ProcessState.RUNNING and self.web_ok:
                self._web_failing_since = self._web_failing_since or now
                failing = now - self._web_failing_since
                self.web_ok = failing < WEB_UNHEALTHY_SECONDS
                if failing > WEB_UNHEALTHY_RESTART_SECONDS:
                    web.restart_now()
                    self.web_ok, self._web_failing_since = False, None
            elif web.state != ProcessState.RUNNING:
                self.web_ok, self._web_failing_since = False, None
            return self.health()

    def health(self) -> Health:
        rows = [
            {"name": n, "state": p.state.value, "pid": p.pid, "restarts": p.restarts, "reason": p.reason}
            for n, p in self.processes.items()
        ]
        fatal = [p for p in self.processes.values() if p.state == ProcessState.FATAL]
        down = [p for p in self.processes.values() if p.state in (ProcessState.BACKOFF, ProcessState.STOPPED)]
        starting = [p for p in self.processes.values() if p.state == ProcessState.STARTING]
        if fatal:
            reason = "; ".join(f"{p.spec.name} is FATAL: {p.reason}" for p in fatal)
        elif down:
            reason = "; ".join(f"{p.spec.name} is down ({p.reason or p.state.value}), restarting" for p in down)
        elif starting:
            reason = "starting: " + ", ".join(p.spec.name for p in starting)
        elif not self.web_ok:
            reason = f"{self.web} does not answer its health check"
        else:
            reason = None
        flapping = tuple(n for n, p in self.processes.items() if p.failures)
        return Health(healthy=reason is None, fatal=bool(fatal), reason=reason, components=rows, flapping=flapping)


HealthCallback = Callable[[str, Health], None]


class LocalBackend:
    def __init__(self, *, interval: float, on_health: HealthCallback) -> None:
        self.interval = interval
        self.on_health = on_health
        self._envs: dict[str, EnvironmentProcesses] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watched: set[str] = set()

    def launch(self, plan: LaunchPlan, *, adopt: bool = True) -> tuple[EnvironmentProcesses, list[str]]:
        """Run `plan`: start what does not run (adopting what a previous control plane left),
        and return the components that run with another command or environment. The caller
        replaces those one at a time (EnvironmentProcesses.replace), waiting for health."""
        with self._lock:
            processes = self._envs.get(plan.env_id)
            fresh = processes is None
            if processes is None:
                processes = EnvironmentProcesses(plan)
                self._envs[plan.env_id] = processes
                changed: list[str] = []
            else:
                changed = processes.changed(plan)
                processes.use(plan)
        processes.start(adopt=adopt)
        if fresh:  # adopted processes that a cut-short update left on another spec
            changed = [n for n in REPLACE_ORDER if n in processes.processes and processes.processes[n].stale]
        return processes, changed

    def get(self, env_id: str) -> EnvironmentProcesses | None:
        with self._lock:
            return self._envs.get(env_id)

    def watch(self, env_id: str, enabled: bool = True) -> None:
        """Only watched environments report health (not while a create/update is in flight)."""
        with self._lock:
            (self._watched.add if enabled else self._watched.discard)(env_id)

    def stop_environment(self, env_id: str, root: Path | None = None) -> None:
        with self._lock:
            processes = self._envs.pop(env_id, None)
            self._watched.discard(env_id)
        if processes is not None:
            processes.stop()
        elif root is not None:
            for pid_file in [*(root / "run").glob("*.pid"), *(root / "run" / "draining").glob("*.pid")]:
                kill_group_from_pid_file(pid_file)

    def start_monitor(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="hangar-monitor", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop watching; the processes keep running for the next control plane to adopt."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        with httpx.Client() as client:
            while not self._stop.is_set():
                with self._lock:
                    envs = list(self._envs.items())
                for env_id, processes in envs:
                    try:
                        health = processes.tick(client)
                        if env_id in self._watched:
                            self.on_health(env_id, health)
                    except Exception:  # one environment's failure never stops the monitor
                        log.exception("monitoring environment %s failed", env_id)
                self._stop.wait(self.interval)
