"""One environment's components as supervised processes: start, adopt, reshape, replace, drain, stop.

Every change to the set of processes happens under `lock`, which the monitor's tick also
takes; long waits (a component stopping before its replacement starts) let go of it
between checks, so the monitor keeps watching the rest. Nothing is killed while it has
work: a replaced or retired component that drains finishes its tasks first, under a pid
file in `run/draining/` so that the next control plane adopts it too.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import psutil

from hangar.backend.components import (
    WORKER_PREFIX, Component, components_for, is_worker, replace_order, web_component, worker_ready_file,
)
from hangar.backend.forkserver import Forker
from hangar.backend.heartbeats import json_body, unhealthy_reason
from hangar.backend.pidfiles import alive, kill_group_from_pid_file, read_record, settle_all
from hangar.backend.plan import LaunchPlan
from hangar.backend.process import ManagedProcess, ProcessSpec, ProcessState

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
    # components still starting, whether or not the environment counts as healthy meanwhile
    settling: tuple[str, ...] = ()


class EnvironmentProcesses:
    def __init__(self, plan: LaunchPlan) -> None:
        self.plan = plan
        self.lock = threading.RLock()
        self.web = web_component(plan.major)
        self.forker = Forker(plan)
        self.components: dict[str, Component] = {c.name: c for c in self._fixed(plan)}
        self.processes: dict[str, ManagedProcess] = {c.name: self._process(c) for c in self.components.values()}
        # replaced components that are finishing their work (see Component.replace)
        self.draining: list[ManagedProcess] = []
        self._web_failing_since: float | None = None
        self.web_ok = False
        self.airflow_health: object = None  # the web server's last health answer (backend.heartbeats)

    @staticmethod
    def _fixed(plan: LaunchPlan) -> list[Component]:
        """The components `plan` always runs (workers come and go with the autoscaler)."""
        return components_for(plan.major, schedulers=plan.schedulers)

    def _process(self, component: Component) -> ManagedProcess:
        return ManagedProcess(spec=self._spec(component), spawner=self.forker.spawn)

    def _spec(self, component: Component) -> ProcessSpec:
        root = self.plan.root
        env = {**self.plan.env, **self.plan.component_env.get(component.role, {})}
        ready = None  # a worker counts as RUNNING once Celery is ready
        if component.role == "worker" and self.plan.workers is not None and self.plan.workers.ready_files:
            ready = worker_ready_file(root / "run", component.name, env)
        return ProcessSpec(
            name=component.name,
            argv=[*self.plan.wrapper, str(self.plan.airflow_bin), *component.args],
            env=env,
            cwd=root,
            log_file=root / "logs" / "components" / f"{component.name}.log",
            pid_file=root / "run" / f"{component.name}.pid",
            start_seconds=self.plan.start_seconds,
            start_retries=self.plan.start_retries,
            stable_seconds=self.plan.stable_seconds,
            run_as=self.plan.run_as,
            ready_file=ready,
            stop_leader_first=component.replace == "drain",
        )

    def start(self, *, adopt: bool) -> list[str]:
        """Start every component that is not already running; return the adopted ones."""
        adopted = []
        if not adopt or any(not self._runs(p) for p in self.processes.values()):
            self.forker.prepare(self.plan, wait=True)
        with self.lock:
            if adopt:
                settle_all(self.plan.root / "run")
            if adopt and self.plan.workers is not None:
                self._adopt_workers()
            for name, process in self.processes.items():
                if adopt and process.adopt():
                    adopted.append(name)
                elif not process.is_alive():
                    process.start()
            if adopt:
                self._adopt_draining()
            self._reshape()
        return adopted

    @staticmethod
    def _runs(process: ManagedProcess) -> bool:
        """Whether `process` runs, by its pid file (before adoption)."""
        record = read_record(process.spec.pid_file)
        return record is not None and alive(record["pid"], record["create_time"])

    def _adopt_workers(self) -> None:
        """Workers a previous control plane started: their pid files name them."""
        for pid_file in sorted(self.plan.root.joinpath("run").glob(f"{WORKER_PREFIX}*.pid")):
            name = pid_file.stem
            if name in self.processes or not name.removeprefix(WORKER_PREFIX).isdigit():
                continue
            component = self.plan.component(name)
            self.components[name] = component
            self.processes[name] = self._process(component)

    def _reshape(self) -> None:
        """Start the components the plan adds (another scheduler, the minimum of workers) and
        retire those it drops (a scheduler fewer; every worker when it leaves Celery): they
        drain, so their tasks finish."""
        wanted = {c.name: c for c in self._fixed(self.plan)}
        for name in [n for n in self.components if n not in wanted and not (is_worker(n) and self.plan.workers)]:
            self._retire(name)
        for name, component in wanted.items():
            if name not in self.processes:
                self.components[name] = component
                self.processes[name] = self._process(component)
                self.processes[name].start()
        if self.plan.workers is not None:
            missing = self.plan.workers.min_workers - len(self.workers())
            for _ in range(max(0, missing)):
                self._add_worker()

    def workers(self) -> list[str]:
        """The workers that take tasks (not those draining)."""
        with self.lock:
            return sorted((n for n in self.processes if is_worker(n)), key=lambda n: int(n.removeprefix(WORKER_PREFIX)))

    def _add_worker(self) -> str:
        used = {int(n.removeprefix(WORKER_PREFIX)) for n in self.processes if is_worker(n)}
        used |= {int(p.spec.name.removeprefix(WORKER_PREFIX)) for p in self.draining if is_worker(p.spec.name)}
        index = next(i for i in range(1, len(used) + 2) if i not in used)
        component = self.plan.component(f"{WORKER_PREFIX}{index}")
        self.components[component.name] = component
        self.processes[component.name] = process = self._process(component)
        process.start()
        return component.name

    def _retire(self, name: str) -> None:
        """Take `name` out of service without killing its work: a draining component drains,
        anything else stops."""
        component = self.components.pop(name)
        process = self.processes.pop(name)
        if not process.is_alive():
            process.stop()
            return
        self._set_aside(name, process, component)

    def _set_aside(self, name: str, process: ManagedProcess, component: Component) -> None:
        """Let `process` end under a pid file in run/draining, watched until it has: a draining
        component drains, anything else stops."""
        process.move_pid_file(self._draining_dir / f"{name}-{process.pid}.pid")
        if component.replace == "drain":
            process.drain(grace=self.plan.drain_grace(component))
        else:
            process.stop()
        self.draining.append(process)

    def scale_workers(self, count: int, *, pick: Callable[[list[ManagedProcess]], list[ManagedProcess]] | None = None) -> list[str]:
        """Run `count` workers: start new ones at once, or warm-shut-down the surplus (they finish
        their tasks and take no new ones). Returns the workers started or retired."""
        if self.plan.workers is not None and count > len(self.workers()):
            self.forker.prepare(self.plan, wait=True)
        with self.lock:
            if self.plan.workers is None:
                return []
            names = self.workers()
            if count > len(names):
                return [self._add_worker() for _ in range(count - len(names))]
            surplus = len(names) - count
            if surplus <= 0:
                return []
            chosen = (pick or least_busy)([self.processes[n] for n in names])[:surplus]
            retired = [p.spec.name for p in chosen]
            for name in retired:
                self._retire(name)
            return retired

    def _adopt_draining(self) -> None:
        """Drains a previous control plane started go on; they were signalled once already."""
        for pid_file in sorted(self._draining_dir.glob("*.pid")):
            name = pid_file.stem.rsplit("-", 1)[0]
            try:
                component = self.components.get(name) or self.plan.component(name)
            except (KeyError, AssertionError, ValueError):
                component = None
            if component is None or any(p.spec.pid_file == pid_file for p in self.draining):
                continue
            process = ManagedProcess(spec=replace(self._spec(component), pid_file=pid_file))
            if process.adopt():
                process.watch_drain(grace=self.plan.drain_grace(component))
                self.draining.append(process)
            else:
                pid_file.unlink(missing_ok=True)

    @property
    def _draining_dir(self) -> Path:
        return self.plan.root / "run" / "draining"

    def changed(self, plan: LaunchPlan) -> list[str]:
        """Running components whose command or environment `plan` changes, in REPLACE_ORDER
        (components the plan adds or drops are started or retired by use())."""
        with self.lock:
            previous, self.plan = self.plan, plan
            try:
                kept = {c.name for c in self._fixed(plan)} | ({n for n in self.components if is_worker(n)}
                                                              if plan.workers else set())
                components = [plan.component(n) for n in self.components if n in kept]
                differ = {c.name for c in components if self.processes[c.name].spec != self._spec(c)}
            finally:
                self.plan = previous
        return [n for n in replace_order(components) if n in differ]

    def use(self, plan: LaunchPlan) -> None:
        """Take `plan` for every later (re)start, start what it adds and retire what it drops;
        nothing else running is touched."""
        self.forker.prepare(plan, wait=False)  # a new configuration: its fork server imports meanwhile
        with self.lock:
            self.plan = plan
            self._reshape()

    def proved(self, name: str, process: ManagedProcess) -> None:
        """`process` (still `name`'s) proved its start: its Airflow job runs."""
        with self.lock:
            if self.processes.get(name) is process:
                process.ready()

    def warm_web(self) -> None:
        """Have the fork server import the web server's modules now, for a replace() of it later
        (which waits for them before it stops the old one)."""
        self.forker.prepare(self.plan, wait=True)
        self.forker.warm("web")

    def replace(self, name: str) -> None:
        """Start `name` afresh from the current plan; the old process drains, overlaps or stops
        first, as its Component says. No task is killed: the scheduler drains."""
        self.forker.prepare(self.plan, wait=True)
        with self.lock:
            component = self.components[name] = self.plan.component(name)
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
                self._set_aside(name, old, component)
            if name == self.web:
                self.web_ok, self._web_failing_since = False, None
            new = self._process(component)
            self.processes[name] = new
            new.start()

    def stop(self, *, drain: bool = False) -> None:
        """Stop every component; with `drain`, the scheduler's running tasks finish first."""
        if drain:
            with self.lock:
                draining = []
                for name, component in self.components.items():
                    if component.replace == "drain":
                        self.processes[name].drain(grace=self.plan.drain_grace(component))
                        draining.append(self.processes[name])
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
            settle_all(self.plan.root / "run")
            for component in self.components.values():
                kill_group_from_pid_file(self._spec(component).pid_file)
            for pid_file in [*self._draining_dir.glob("*.pid"), *self.plan.root.joinpath("run").glob(f"{WORKER_PREFIX}*.pid")]:
                kill_group_from_pid_file(pid_file)
        self.forker.close()

    def probe_web(self, client: httpx.Client) -> bool:
        """Whether the web server answers its health check; keeps its answer on Airflow's jobs."""
        path = self.components[self.web].health_path
        try:
            response = client.get(f"http://127.0.0.1:{self.plan.web_port}{path}", timeout=3.0)
        except httpx.HTTPError:
            self.airflow_health = None
            return False
        self.airflow_health = json_body(response) if response.status_code == 200 else None
        return response.status_code == 200

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
                web.ready()
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

    def _replicated(self, role: str) -> bool:
        return role == "worker" or (role == "scheduler" and self.plan.schedulers > 1)

    def health(self) -> Health:
        rows = [
            {"name": n, "state": p.state.value, "pid": p.pid, "restarts": p.restarts, "reason": p.reason}
            for n, p in self.processes.items()
        ]
        fatal = [p for p in self.processes.values() if p.state == ProcessState.FATAL]
        # A role run by several processes (schedulers, workers) serves while one of them runs: the
        # others' restarts are shown per component but do not make the environment unavailable.
        # Workers come and go with the autoscaler and are restarted by the supervisor: the
        # environment serves (tasks wait in the broker) while one restarts; only FATAL counts.
        serving = {self.components[n].role for n, p in self.processes.items() if p.state == ProcessState.RUNNING}
        counted = [p for n, p in self.processes.items() if not (self._replicated(self.components[n].role)
                                                                and (self.components[n].role in serving
                                                                     or self.components[n].role == "worker"))]
        down = [p for p in counted if p.state in (ProcessState.BACKOFF, ProcessState.STOPPED)]
        starting = [p for p in counted if p.state == ProcessState.STARTING]
        if fatal:
            reason = "; ".join(f"{p.spec.name} is FATAL: {p.reason}" for p in fatal)
        elif down:
            reason = "; ".join(f"{p.spec.name} is down ({p.reason or p.state.value}), restarting" for p in down)
        elif starting:
            reason = "starting: " + ", ".join(p.spec.name for p in starting)
        elif not self.web_ok:
            reason = f"{self.web} does not answer its health check"
        elif stale := unhealthy_reason(self.airflow_health, stale_after=self.plan.heartbeat_stale_seconds):
            reason = stale
        else:
            reason = None
        flapping = tuple(n for n, p in self.processes.items() if p.failures)
        settling = tuple(n for n, p in self.processes.items() if p.state == ProcessState.STARTING)
        return Health(healthy=reason is None, fatal=bool(fatal), reason=reason, components=rows, flapping=flapping,
                      settling=settling)


def least_busy(workers: list[ManagedProcess]) -> list[ManagedProcess]:
    """Workers in the order to scale them down: those running the fewest task processes first
    (a Celery prefork child runs each task under a supervisor process of its own), the newest
    first among equals."""
    def load(process: ManagedProcess) -> tuple[int, int]:
        try:
            count = len(psutil.Process(process.pid).children(recursive=True)) if process.pid else 0
        except psutil.Error:
            count = 0
        return count, -int(process.spec.name.removeprefix(WORKER_PREFIX))
    return sorted(workers, key=load)
