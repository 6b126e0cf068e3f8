"""The local backend: every environment's components as supervised processes.

A monitor thread ticks every process, probes the web component over HTTP and
reports each environment's health through a callback; it never raises, so one
broken environment cannot stop the others from being watched. Processes run in
their own sessions with pid files, so they outlive the control plane, and the
next control plane adopts them instead of starting duplicates; a spawn the previous
one was killed in is settled first (pidfiles.settle_all), so no process goes unnamed.
What runs one environment's processes is hangar.backend.environment_processes.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import httpx

from hangar.backend.components import replace_order
from hangar.backend.environment_processes import EnvironmentProcesses, Health
from hangar.backend.pidfiles import kill_group_from_pid_file, settle_all
from hangar.backend.plan import LaunchPlan

log = logging.getLogger(__name__)

HealthCallback = Callable[[str, Health], None]
# how loud a component's new state is in the environment's log
_STATE_LEVELS = {"BACKOFF": logging.WARNING, "FATAL": logging.ERROR}


class LocalBackend:
    def __init__(self, *, interval: float, on_health: HealthCallback) -> None:
        self.interval = interval
        self.on_health = on_health
        self._envs: dict[str, EnvironmentProcesses] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watched: set[str] = set()
        self._states: dict[str, dict[str, tuple[str, str | None]]] = {}  # env_id -> component -> (state, reason)
        self._client = httpx.Client()  # the web servers' health checks (shared by threads: httpx allows it)

    def launch(self, plan: LaunchPlan, *, adopt: bool = True) -> tuple[EnvironmentProcesses, list[str]]:
        """Run `plan`: start what does not run (adopting what a previous control plane left),
        and return the components that run with another command or environment. The caller
        replaces those (EnvironmentProcesses.replace), waiting for health."""
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
            changed = [n for n in replace_order(list(processes.components.values())) if processes.processes[n].stale]
        return processes, changed

    def get(self, env_id: str) -> EnvironmentProcesses | None:
        with self._lock:
            return self._envs.get(env_id)

    def watch(self, env_id: str, enabled: bool = True) -> None:
        """Only watched environments report health (not while a create/update is in flight)."""
        with self._lock:
            (self._watched.add if enabled else self._watched.discard)(env_id)

    def look(self, env_id: str) -> Health | None:
        """Check one environment now, between the monitor's rounds: a reconcile waiting for its
        components sees a web server's first answer without waiting for the next round."""
        processes = self.get(env_id)
        return None if processes is None else self._tick(env_id, processes)

    def _tick(self, env_id: str, processes: EnvironmentProcesses) -> Health:
        """tick(), and a line in the environment's own log (hangar.logstore.handler) for every
        component whose state changed since the last one."""
        health = processes.tick(self._client)
        now = {row["name"]: (row["state"], row["reason"]) for row in health.components}
        with self._lock:
            before, self._states[env_id] = self._states.get(env_id, {}), now
        for name, (state, reason) in now.items():
            if before.get(name, (None,))[0] != state:
                level = _STATE_LEVELS.get(state, logging.INFO)
                log.log(level, "%s is %s%s", name, state, f": {reason}" if reason else "", extra={"env_id": env_id})
        return health

    def stop_environment(self, env_id: str, root: Path | None = None) -> None:
        with self._lock:
            processes = self._envs.pop(env_id, None)
            self._watched.discard(env_id)
        if processes is not None:
            processes.stop()
        elif root is not None:
            settle_all(root / "run")
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
        with self._lock:
            envs = list(self._envs.values())
        for processes in envs:
            processes.forker.close()
        self._client.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                envs = list(self._envs.items())
            for env_id, processes in envs:
                try:
                    health = self._tick(env_id, processes)
                    if env_id in self._watched:
                        self.on_health(env_id, health)
                except Exception:  # one environment's failure never stops the monitor
                    log.exception("monitoring environment %s failed", env_id)
            self._stop.wait(self.interval)
