"""The worker bundle's shape: what `GET /api/v1/environments/{name}/worker-bundle` answers.

The control plane builds it (hangar.domain.worker_bundle) and a joined host reads it
(hangar.agent), so it lives here, below both. It holds secrets: it is sent only to a live
worker token of its environment and never logged.
"""
from __future__ import annotations

from pydantic import BaseModel


class WorkerBundle(BaseModel):
    """GET /api/v1/environments/{name}/worker-bundle. Holds secrets: sent only to a worker token."""

    environment_id: str
    environment: str
    revision: int
    airflow_version: str
    requirements: str | None
    runtime_python: str
    runtime_epoch: int
    celery: bool = True
    # the key the control plane's runtime has; the host builds from the same inputs and must get it too
    runtime_key: str
    airflow_cfg: str
    # the worker's environment on top of the host's own: secrets, broker and database, the spec's variables
    env: dict[str, str]
    queue: str
    worker_concurrency: int
    startup_script: str | None
    dags_sha256: str
    plugins_sha256: str
    # what the host should know: an address it may not reach
    warnings: list[str] = []
