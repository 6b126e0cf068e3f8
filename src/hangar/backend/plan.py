"""What one environment's processes are started from.

The reconciler builds a LaunchPlan from a revision; the local backend only reads it. A
component's command, environment and folder all come from the plan, so two plans that
agree on them start it identically (ProcessSpec.digest).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hangar.backend.identity import RunAs
from hangar.backend.components import WORKER_PREFIX, Component, WorkerPlan, components_for, is_worker, worker_component


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
    # start components from a fork server that has imported Airflow (see backend.forkserver)
    fork: bool = False
    fork_ready_timeout: float = 60.0
    # how long a draining scheduler may take to finish its running tasks
    drain_seconds: float = 240.0
    schedulers: int = 1
    # Celery environments: how their workers run (None: LocalExecutor, no workers)
    workers: WorkerPlan | None = None
    # how long a worker being scaled down or replaced may take to finish its tasks
    worker_drain_seconds: float = 21600.0
    # the environment's own system user (backend.identity); None: the control plane's user
    run_as: RunAs | None = None
    # seconds after which an Airflow job's newest heartbeat makes the environment unhealthy
    heartbeat_stale_seconds: float = 30.0

    def component(self, name: str) -> Component:
        """The component `name` as this plan runs it."""
        if is_worker(name):
            assert self.workers is not None
            return worker_component(int(name.removeprefix(WORKER_PREFIX)), self.workers)
        return {c.name: c for c in components_for(self.major, schedulers=self.schedulers)}[name]

    @property
    def python(self) -> Path:
        return self.airflow_bin.parent / "python"

    @property
    def forks(self) -> bool:
        """Whether components come from a fork server: not when a startup script runs first."""
        return self.fork and not self.wrapper

    def drain_grace(self, component: Component) -> float:
        return self.worker_drain_seconds if component.role == "worker" else self.drain_seconds
