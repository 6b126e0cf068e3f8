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
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from hangar.backend.components import Component, components_for, web_component
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
    # extra environment per component name (e.g. its log level)
    component_env: dict[str, dict[str, str]] = field(default_factory=dict)
    # a hash of the rendered configuration: a plan with another one needs a restart
    config_hash: str = ""


class EnvironmentProcesses:
    def __init__(self, plan: LaunchPlan) -> None:
        self.plan = plan
        self.lock = threading.RLock()
        self.web = web_component(plan.major)
        self.components: dict[str, Component] = {c.name: c for c in components_for(plan.major)}
        self.processes: dict[str, ManagedProcess] = {
            c.name: ManagedProcess(spec=self._spec(c)) for c in self.components.values()
        }
        self._web_failing_since: float | None = None
        self.web_ok = False

    def _spec(self, component: Component) -> ProcessSpec:
        root = self.plan.root
        return ProcessSpec(
            name=component.name,
            argv=[str(self.plan.airflow_bin), *component.args],
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
        return adopted

    def stop(self) -> None:
        with self.lock:
            # the web server last, so the UI reports on the others while they drain
            order = [n for n in self.processes if n != self.web] + [self.web]
            for name in order:
                self.processes[name].stop()
            for name in order:
                self.processes[name].stop_and_wait()
            for component in self.components.values():
                kill_group_from_pid_file(self._spec(component).pid_file)

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

    def launch(self, plan: LaunchPlan, *, adopt: bool = True) -> EnvironmentProcesses:
        with self._lock:
            processes = self._envs.get(plan.env_id)
            if processes is None or processes.plan != plan:
                if processes is not None:
                    processes.stop()
                processes = EnvironmentProcesses(plan)
                self._envs[plan.env_id] = processes
        processes.start(adopt=adopt)
        return processes

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
            for pid_file in (root / "run").glob("*.pid"):
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
