"""Celery workers that say when they are ready.

airflow.cfg's ``[celery] celery_config_options`` names CELERY_CONFIG here, so every Celery
worker (and the scheduler's executor) imports this module for its configuration. The
configuration is the Celery provider's own, unchanged; what the import adds is a handler for
Celery's ``worker_ready`` signal, which Celery sends once the worker consumes from its queues
(just before it logs ``ready.``). The handler writes the file HANGAR_READY_FILE names, and
Hangar's supervisor counts the worker as RUNNING once that file exists (hangar.backend.process):
staying up a few seconds says nothing about a worker that is still connecting to its broker.

Invariants:
- The file appears whole (written aside, then renamed) and holds the worker's pid.
- Without HANGAR_READY_FILE (the scheduler, a worker started by hand) nothing is written.
- The variable is read when the signal comes, not at import: a fork server may have
  imported this module for many components before any of them had its own environment.
- A file that cannot be written is logged, never raised: the worker runs on, and Hangar
  keeps it STARTING.

Standard library, Celery and Airflow only: this runs under the runtime's Python, where
``hangar`` is not importable.
"""
from __future__ import annotations

import logging
import os

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_ready

READY_FILE_ENV = "HANGAR_READY_FILE"  # set per worker by hangar.backend.environment_processes

# the provider's dictionary itself, not a copy: the Celery app is configured exactly as without
# this module (and the provider, which compares with it, takes it for its default)
CELERY_CONFIG = DEFAULT_CELERY_CONFIG

log = logging.getLogger(__name__)


def write_ready_file(path: str) -> None:
    """Write `path` whole: a reader sees no file or the finished one."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as file:
        file.write(f"{os.getpid()}\n")
    os.replace(tmp, path)


@worker_ready.connect
def on_worker_ready(**_: object) -> None:
    path = os.environ.get(READY_FILE_ENV)
    if not path:
        return
    try:
        write_ready_file(path)
    except OSError as exc:
        log.warning("hangar: cannot write the ready file %s: %s", path, exc)
