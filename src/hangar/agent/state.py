"""What a joined host applied last, kept in <environment>/applied.json.

Only digests of the DAGs and plugins and the environment's id, never a secret: the bundle's
secrets stay in memory and in the worker's environment. A join started again after a killed
one reads the file, so DAGs and plugins already in place are not fetched again.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from hangar.runtime.airflow_config import EnvironmentLayout
from hangar.runtime.venvs import Runtime


@dataclass
class Applied:
    """What this host runs now (digests only; the bundle's secrets stay in memory and in the worker)."""

    dags: str | None = None
    plugins: str | None = None
    runtime: Runtime | None = None


def save(layout: EnvironmentLayout, *, environment_id: str | None, applied: Applied) -> None:
    state = {"environment_id": environment_id, "dags": applied.dags, "plugins": applied.plugins}
    tmp = layout.state.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(layout.state)


def load(layout: EnvironmentLayout) -> dict:
    try:
        return json.loads(layout.state.read_text())
    except (FileNotFoundError, ValueError):
        return {}
