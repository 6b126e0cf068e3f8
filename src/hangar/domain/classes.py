"""Environment classes: presets for how much work one environment may run at once.

The numbers are rendered into airflow.cfg (see hangar.runtime.airflow_config) and
documented in the README. They are sized for LocalExecutor on one machine.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EnvironmentClass(StrEnum):
    small = "small"
    medium = "medium"
    large = "large"


@dataclass(frozen=True, kw_only=True)
class ClassPreset:
    parallelism: int  # [core] parallelism: task instances running at once
    max_active_tasks_per_dag: int  # [core] max_active_tasks_per_dag
    max_active_runs_per_dag: int  # [core] max_active_runs_per_dag
    parsing_processes: int  # [dag_processor] parsing_processes
    default_pool_slots: int  # [core] default_pool_task_slot_count


PRESETS: dict[EnvironmentClass, ClassPreset] = {
    EnvironmentClass.small: ClassPreset(
        parallelism=16, max_active_tasks_per_dag=16, max_active_runs_per_dag=16,
        parsing_processes=1, default_pool_slots=128,
    ),
    EnvironmentClass.medium: ClassPreset(
        parallelism=32, max_active_tasks_per_dag=32, max_active_runs_per_dag=16,
        parsing_processes=2, default_pool_slots=128,
    ),
    EnvironmentClass.large: ClassPreset(
        parallelism=64, max_active_tasks_per_dag=64, max_active_runs_per_dag=32,
        parsing_processes=4, default_pool_slots=256,
    ),
}
