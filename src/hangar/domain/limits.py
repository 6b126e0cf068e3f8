"""How many task processes an environment's spec lets run at once, and the limit on it.

The number follows from the executor:
- LocalExecutor: each scheduler runs up to its [core] parallelism task processes;
- CeleryExecutor: each worker runs its concurrency, and the autoscaler starts up to max_workers.

The limit is the smaller of the class's own (its slots at its largest size) and the host's,
HANGAR_MAX_TASK_PROCESSES. A request over it is refused when it arrives, naming the limit,
before anything is stored: a few settings could otherwise start thousands of processes.
"""
from __future__ import annotations

from hangar.schemas.classes import PRESETS, class_task_processes, scheduler_parallelism
from hangar.schemas.spec import Executor, Spec
from hangar.errors import ValidationFailed


class TaskProcessLimitExceeded(ValidationFailed):
    code = "TASK_PROCESS_LIMIT_EXCEEDED"


def task_processes(spec: Spec) -> tuple[int, str]:
    """The most task processes `spec` runs at once, and how that number comes about."""
    assert spec.max_workers is not None and spec.worker_concurrency is not None and spec.schedulers is not None
    options = spec.airflow_configuration_options or {}
    if spec.executor == Executor.celery:
        concurrency = _number(options.get("celery.worker_concurrency"), spec.worker_concurrency)
        return concurrency * spec.max_workers, f"{concurrency} tasks per worker x {spec.max_workers} workers"
    preset = PRESETS[spec.environment_class]
    per_scheduler = _number(options.get("core.parallelism"), scheduler_parallelism(
        preset, max_workers=spec.max_workers, schedulers=spec.schedulers))
    return per_scheduler * spec.schedulers, f"parallelism {per_scheduler} per scheduler x {spec.schedulers} schedulers"


def check_task_processes(spec: Spec, *, host_limit: int) -> None:
    count, why = task_processes(spec)
    class_limit = class_task_processes(PRESETS[spec.environment_class])
    limit, named = min((class_limit, f"the most class {spec.environment_class} runs"),
                       (host_limit, "HANGAR_MAX_TASK_PROCESSES, this host's limit per environment"))
    if count > limit:
        raise TaskProcessLimitExceeded(
            f"{spec.environment_class} with the {spec.executor.value} executor would run up to {count} task "
            f"processes at once ({why}); the limit is {limit} ({named}): lower max_workers, schedulers or "
            f"parallelism, or choose a larger class")


def _number(value: object, default: int) -> int:
    try:
        return int(str(value)) if value is not None else default
    except ValueError:
        return default


# An environment's own limits (applied by backend.confinement when it runs as its own user)
BASE_TASKS = 256  # an idle environment runs about 40 tasks (processes and threads); room for its CLI calls
TASKS_PER_SLOT = 8  # a running task: its supervisor, the task itself and their threads
MEMORY_PER_TASK_SLOT = 0.4 * 2**30  # MWAA's worker memory per task it runs (mw1.small: 5 tasks, 2 GB)


def environment_limits(spec: Spec, *, max_processes: int | None, memory_mib: int | None) -> tuple[int, int]:
    """(tasks, memory in bytes) the environment's processes may use together: from its class
    and its task processes, capped by the host's settings when they are set.

    Memory: one worker's worth (tasks per worker x 0.4 GiB, MWAA's worker memory) for the
    api-server, the triggerer and dag-processor together, one for each scheduler, one for each
    Celery worker it may scale to."""
    assert spec.schedulers is not None and spec.max_workers is not None
    tasks = BASE_TASKS + TASKS_PER_SLOT * task_processes(spec)[0]
    preset = PRESETS[spec.environment_class]
    units = 1 + spec.schedulers + (spec.max_workers if spec.executor == Executor.celery else 0)
    memory = int(MEMORY_PER_TASK_SLOT * preset.worker_concurrency * units)
    if max_processes is not None:
        tasks = min(tasks, max_processes)
    if memory_mib is not None:
        memory = min(memory, memory_mib * 2**20)
    return tasks, memory
