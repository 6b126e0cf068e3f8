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
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Component:
    name: str
    args: tuple[str, ...]
    # the HTTP path whose 200 means healthy, on the environment's web port
    health_path: str | None = None
    replace: str = "overlap"  # "drain", "overlap" or "stop-first" (see the module docstring)


def components_for(major: int) -> list[Component]:
    if major >= 3:
        return [
            Component(name="api-server", args=("api-server",), health_path="/api/v2/monitor/health",
                      replace="stop-first"),
            Component(name="scheduler", args=("scheduler",), replace="drain"),
            Component(name="dag-processor", args=("dag-processor",)),
            Component(name="triggerer", args=("triggerer",)),
        ]
    return [
        Component(name="webserver", args=("webserver",), health_path="/health", replace="stop-first"),
        Component(name="scheduler", args=("scheduler",), replace="drain"),
        Component(name="triggerer", args=("triggerer",)),
    ]


# The order in which an update replaces components: what parses DAGs first, the web server last.
REPLACE_ORDER = ("dag-processor", "triggerer", "scheduler", "api-server", "webserver")


def web_component(major: int) -> str:
    return "api-server" if major >= 3 else "webserver"


PORT_NAMES = ["web", "worker_logs", "trigger_logs"]
