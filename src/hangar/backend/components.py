"""Which Airflow components an environment runs, and how each is checked.

Airflow 3: api-server, scheduler, dag-processor, triggerer (LocalExecutor runs
tasks from the scheduler). Airflow 2: webserver, scheduler, triggerer; the
scheduler parses DAGs itself.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Component:
    name: str
    args: tuple[str, ...]
    # the HTTP path whose 200 means healthy, on the environment's web port
    health_path: str | None = None


def components_for(major: int) -> list[Component]:
    if major >= 3:
        return [
            Component(name="api-server", args=("api-server",), health_path="/api/v2/monitor/health"),
            Component(name="scheduler", args=("scheduler",)),
            Component(name="dag-processor", args=("dag-processor",)),
            Component(name="triggerer", args=("triggerer",)),
        ]
    return [
        Component(name="webserver", args=("webserver",), health_path="/health"),
        Component(name="scheduler", args=("scheduler",)),
        Component(name="triggerer", args=("triggerer",)),
    ]


def web_component(major: int) -> str:
    return "api-server" if major >= 3 else "webserver"


PORT_NAMES = ["web", "worker_logs", "trigger_logs"]
