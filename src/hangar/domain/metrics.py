"""Hangar's own series per environment, made at each scrape of /metrics from what the control
plane knows: the stored status, the supervisor's components, the autoscaler's last reading (a
Celery environment's queued and running tasks; another's are read from its metadata database
at the scrape, with the same query), and the web server's last health answer (Airflow's job
heartbeats).

Every series has an `environment` label (the environment's name). CPU and memory are a
component's process with everything it started (task processes included).
"""
from __future__ import annotations

from collections.abc import Iterator

import psutil
from prometheus_client.core import Metric

from hangar.backend.heartbeats import heartbeat_ages
from hangar.context import Context
from hangar.domain.metadata_access import metadata_url
from hangar.runtime import metadb
from hangar.schemas.spec import Executor
from hangar.store import repository, worker_samples


def _usage(pid: int | None) -> tuple[float, float] | None:
    """(CPU seconds, resident bytes) of a process and its descendants."""
    if not pid:
        return None
    try:
        root = psutil.Process(pid)
        cpu = memory = 0.0
        for process in [root, *root.children(recursive=True)]:
            try:
                times, info = process.cpu_times(), process.memory_info()
            except psutil.Error:
                continue
            cpu += times.user + times.system
            memory += info.rss
        return cpu, memory
    except psutil.Error:
        return None


def _demand(ctx: Context, env_id: str, database: str | None) -> tuple[int, int] | None:
    """(queued, running) task instances of an environment, or None when its database is out of reach."""
    try:
        connection = metadb.connect(metadata_url(ctx, env_id, database), timeout=2)
    except Exception:
        return None
    try:
        return metadb.task_demand(connection)
    except Exception:
        return None
    finally:
        metadb.close_quietly(connection)


def hangar_families(ctx: Context) -> Iterator[Metric]:
    status = Metric("hangar_environment_status", "1 for the environment's current status", "gauge")
    healthy = Metric("hangar_environment_healthy", "1 when every component serves and Airflow's jobs beat", "gauge")
    heartbeat = Metric("hangar_airflow_heartbeat_age_seconds", "Seconds since each Airflow job's newest heartbeat", "gauge")
    state = Metric("hangar_component_state", "1 for each component's supervisor state", "gauge")
    restarts = Metric("hangar_component_restarts", "Restarts of each component", "counter")
    cpu = Metric("hangar_component_cpu_seconds", "CPU seconds of each component and its children", "counter")
    memory = Metric("hangar_component_memory_bytes", "Resident memory of each component and its children", "gauge")
    workers = {kind: Metric(f"hangar_workers_{kind}", f"Celery workers: {kind}", "gauge")
               for kind in ("current", "desired", "min", "max")}
    tasks = {kind: Metric(f"hangar_tasks_{kind}", f"Task instances {kind}", "gauge") for kind in ("queued", "running")}
    with ctx.store.session() as session:
        rows = []
        for env in repository.list_live(session):
            spec = repository.get_spec(session, env.id, env.running_revision or env.revision)
            sample = worker_samples.latest(session, env.id) if spec.executor == Executor.celery else None
            rows.append((env.id, env.name, str(env.status), spec, sample, env.database_name))
    for env_id, name, current, spec, sample, database in rows:
        label = {"environment": name}
        status.add_sample("hangar_environment_status", {**label, "status": current}, 1)
        processes = ctx.backend.get(env_id)
        if processes is not None:
            health = processes.health()
            healthy.add_sample("hangar_environment_healthy", label, 1 if health.healthy else 0)
            for job, age in heartbeat_ages(processes.airflow_health).items():
                heartbeat.add_sample("hangar_airflow_heartbeat_age_seconds", {**label, "job": job}, age)
            for component, process in list(processes.processes.items()):
                tags = {**label, "component": component}
                state.add_sample("hangar_component_state", {**tags, "state": process.state.value}, 1)
                restarts.add_sample("hangar_component_restarts_total", tags, process.restarts)
                usage = _usage(process.pid)
                if usage:
                    cpu.add_sample("hangar_component_cpu_seconds_total", tags, usage[0])
                    memory.add_sample("hangar_component_memory_bytes", tags, usage[1])
        if spec.executor == Executor.celery:
            limits = {"min": spec.min_workers, "max": spec.max_workers or spec.min_workers}
            for kind, value in limits.items():
                workers[kind].add_sample(f"hangar_workers_{kind}", label, value)
            if sample is not None:
                workers["current"].add_sample("hangar_workers_current", label, sample.current)
                workers["desired"].add_sample("hangar_workers_desired", label, sample.desired)
                tasks["queued"].add_sample("hangar_tasks_queued", label, sample.queued)
                tasks["running"].add_sample("hangar_tasks_running", label, sample.running)
        elif processes is not None and (demand := _demand(ctx, env_id, database)) is not None:
            tasks["queued"].add_sample("hangar_tasks_queued", label, demand[0])
            tasks["running"].add_sample("hangar_tasks_running", label, demand[1])
    yield from (status, healthy, heartbeat, state, restarts, cpu, memory, *workers.values(), *tasks.values())
