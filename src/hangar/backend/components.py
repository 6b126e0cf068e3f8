"""Which Airflow components an environment runs, how each is checked, and how it is
replaced during an update.

Airflow 3: api-server, scheduler, dag-processor, triggerer (LocalExecutor runs
tasks from the scheduler). Airflow 2: webserver, scheduler, triggerer; the
scheduler parses DAGs itself.

Replacement, so that no task is killed:
- "drain": the scheduler runs the tasks, so its successor starts at once (Airflow
  supports several schedulers on PostgreSQL) while the old one stops scheduling and
  lets its running tasks finish (Process.drain);
- "overlap": the successor starts before the old one stops (a triggerer's deferred
  tasks move to the live triggerer; two DAG processors parse the same files once more);
- "stop-first": the web server holds the environment's port, so it stops first; a
  running task's calls to the execution API are retried by Airflow while it is away.

Celery environments add workers (`worker-1` ...), as many as the autoscaler wants. A
worker also drains: SIGTERM to its leader alone is Celery's warm shutdown (it stops
consuming, finishes what it runs, then exits). Several schedulers are `scheduler`,
`scheduler-2` ... with the role "scheduler": Airflow runs them side by side on
PostgreSQL's row-level locks.
"""
from __future__ import annotations

from pathlib import Path
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Component:
    name: str
    args: tuple[str, ...]
    # the HTTP path whose 200 means healthy, on the environment's web port
    health_path: str | None = None
    replace: str = "overlap"  # "drain", "overlap" or "stop-first" (see the module docstring)
    role: str = ""  # what it is, when several run (scheduler-2 is a "scheduler"); its name otherwise

    def __post_init__(self) -> None:
        if not self.role:
            object.__setattr__(self, "role", self.name)


def _schedulers(count: int) -> list[Component]:
    return [Component(name="scheduler" if i == 1 else f"scheduler-{i}", role="scheduler", args=("scheduler",),
                      replace="drain") for i in range(1, count + 1)]


def components_for(major: int, *, schedulers: int = 1) -> list[Component]:
    if major >= 3:
        return [
            Component(name="api-server", args=("api-server",), health_path="/api/v2/monitor/health",
                      replace="stop-first"),
            *_schedulers(schedulers),
            Component(name="dag-processor", args=("dag-processor",)),
            Component(name="triggerer", args=("triggerer",)),
        ]
    return [
        Component(name="webserver", args=("webserver",), health_path="/health", replace="stop-first"),
        *_schedulers(schedulers),
        Component(name="triggerer", args=("triggerer",)),
    ]


@dataclass(frozen=True, kw_only=True)
class WorkerPlan:
    """How a Celery environment's workers run."""

    concurrency: int
    queue: str
    hostname_suffix: str  # the environment's id: Celery node names are worker-N@<id>
    min_workers: int
    max_workers: int
    # whether a worker writes a ready file on Celery's worker_ready (Hangar's celery_config_options,
    # hangar_airflow.celery_ready, is in force), so that it counts as RUNNING only once Celery is
    # ready; otherwise (the user configured their own) it counts as RUNNING after start_seconds
    ready_files: bool = False


WORKER_PREFIX = "worker-"
# the variable that names a worker's ready file (read by hangar_airflow.celery_ready)
READY_FILE_ENV = "HANGAR_READY_FILE"


def worker_ready_file(run: Path, name: str, env: dict[str, str]) -> Path:
    """The file worker `name` writes once Celery is ready, named in `env` for it. Its path depends
    on the name alone, so the worker's spec (and digest) stays the same across restarts and adoptions."""
    path = run / f"{name}.ready"
    env[READY_FILE_ENV] = str(path)
    return path


def is_worker(name: str) -> bool:
    return name.startswith(WORKER_PREFIX)


def worker_component(index: int, plan: WorkerPlan) -> Component:
    name = f"{WORKER_PREFIX}{index}"
    return Component(
        name=name, role="worker", replace="drain",
        args=("celery", "worker", "--concurrency", str(plan.concurrency), "--queues", plan.queue,
              "--celery-hostname", f"{name}@{plan.hostname_suffix}", "--skip-serve-logs",
              "--without-mingle", "--without-gossip"),
    )


# The order in which an update replaces components, by role: workers first (each new one takes
# tasks before the old one stops taking them), then what parses DAGs, the web server last.
REPLACE_ORDER = ("worker", "dag-processor", "triggerer", "scheduler", "api-server", "webserver")


def replace_order(components: list[Component]) -> list[str]:
    """Component names in REPLACE_ORDER (by role, then by name)."""
    ranked = [c for c in components if c.role in REPLACE_ORDER]
    return [c.name for c in sorted(ranked, key=lambda c: (REPLACE_ORDER.index(c.role), len(c.name), c.name))]


def web_component(major: int) -> str:
    return "api-server" if major >= 3 else "webserver"


PORT_NAMES = ["web", "worker_logs", "trigger_logs"]
