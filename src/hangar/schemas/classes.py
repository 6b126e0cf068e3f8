"""Environment classes: presets for how much work one environment may run at once.

Hangar's own classes (small, medium, large) and MWAA's (mw1.micro ... mw1.2xlarge)
with MWAA's documented tasks per worker (3, 5, 10, 20, 40, 80). The numbers are
rendered into airflow.cfg (hangar.runtime.airflow_config) and documented in the
README. On the local backend there is one worker, the scheduler's LocalExecutor,
so an mw1 class runs tasks_per_worker x max_workers tasks at once: the most the
same MWAA environment would run when fully scaled out.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EnvironmentClass(StrEnum):
    small = "small"
    medium = "medium"
    large = "large"
    mw1_micro = "mw1.micro"
    mw1_small = "mw1.small"
    mw1_medium = "mw1.medium"
    mw1_large = "mw1.large"
    mw1_xlarge = "mw1.xlarge"
    mw1_2xlarge = "mw1.2xlarge"


@dataclass(frozen=True, kw_only=True)
class ClassPreset:
    worker_concurrency: int  # tasks one worker runs at once (MWAA's "tasks per worker")
    parallelism: int | None  # [core] parallelism; None: worker_concurrency x max_workers
    max_active_tasks_per_dag: int | None  # None: same as parallelism
    max_active_runs_per_dag: int  # [core] max_active_runs_per_dag
    parsing_processes: int  # [dag_processor] parsing_processes
    default_pool_slots: int  # [core] default_pool_task_slot_count
    max_workers: int = 25  # the most workers the class allows
    max_schedulers: int = 5
    max_webservers: int = 5


def _mw1(tasks: int, parsing: int, *, max_workers: int = 25, max_schedulers: int = 5, max_webservers: int = 5) -> ClassPreset:
    return ClassPreset(
        worker_concurrency=tasks, parallelism=None, max_active_tasks_per_dag=None, max_active_runs_per_dag=16,
        parsing_processes=parsing, default_pool_slots=128, max_workers=max_workers, max_schedulers=max_schedulers,
        max_webservers=max_webservers,
    )


PRESETS: dict[EnvironmentClass, ClassPreset] = {
    EnvironmentClass.small: ClassPreset(
        worker_concurrency=5, parallelism=16, max_active_tasks_per_dag=16, max_active_runs_per_dag=16,
        parsing_processes=1, default_pool_slots=128,
    ),
    EnvironmentClass.medium: ClassPreset(
        worker_concurrency=10, parallelism=32, max_active_tasks_per_dag=32, max_active_runs_per_dag=16,
        parsing_processes=2, default_pool_slots=128,
    ),
    EnvironmentClass.large: ClassPreset(
        worker_concurrency=20, parallelism=64, max_active_tasks_per_dag=64, max_active_runs_per_dag=32,
        parsing_processes=4, default_pool_slots=256,
    ),
    EnvironmentClass.mw1_micro: _mw1(3, 1, max_workers=1, max_schedulers=1, max_webservers=1),
    EnvironmentClass.mw1_small: _mw1(5, 1),
    EnvironmentClass.mw1_medium: _mw1(10, 2),
    EnvironmentClass.mw1_large: _mw1(20, 2),
    EnvironmentClass.mw1_xlarge: _mw1(40, 4),
    EnvironmentClass.mw1_2xlarge: _mw1(80, 4),
}


def parallelism(preset: ClassPreset, *, max_workers: int) -> int:
    return preset.parallelism if preset.parallelism is not None else preset.worker_concurrency * max_workers


def scheduler_parallelism(preset: ClassPreset, *, max_workers: int, schedulers: int) -> int:
    """[core] parallelism for each scheduler under the LocalExecutor.

    Airflow's parallelism is per scheduler, and each scheduler's LocalExecutor runs that many
    task processes: the class's slots are shared among the schedulers, so a second scheduler
    adds availability, not processes."""
    return -(-parallelism(preset, max_workers=max_workers) // schedulers)


def class_task_processes(preset: ClassPreset) -> int:
    """The most task processes the class runs at once at its largest size: its parallelism, or its
    tasks per worker on each of its most workers (Celery)."""
    return max(parallelism(preset, max_workers=preset.max_workers), preset.worker_concurrency * preset.max_workers)
