"""Launching: a staged revision's processes started, replaced and waited for.

`launch` starts what does not run and replaces what runs differently, one component at
a time, each healthy (and, where Airflow records one, running its job) before the next.
Running processes are adopted, never started twice.
"""
from __future__ import annotations

import time

from hangar.backend.components import WorkerPlan
from hangar.backend.environment_processes import EnvironmentProcesses
from hangar.backend.plan import LaunchPlan
from hangar.context import Context
from hangar.domain.changes import roles
from hangar.domain.secrets import fernet_keys
from hangar.errors import ComponentFailed
from hangar.files import last_lines
from hangar.reconciler.journal import Journal
from hangar.reconciler.queue import Work
from hangar.reconciler.staging import Target, prepare
from hangar.runtime import airflow_config, metadb, startup
from hangar.schemas.spec import Executor
from hangar.schemas.versions import parse_version
from hangar.store import repository


def launch_plan(ctx: Context, target: Target) -> LaunchPlan:
    """What the backend starts for `target`: commands, environment, limits and the component plan."""
    with ctx.store.session() as session:
        secrets = repository.get_secrets(session, ctx.envelope, env_id=target.env_id)
    secrets["fernet_key"] = fernet_keys(secrets)  # "new,old" while a rotation is under way
    env = airflow_config.process_env(
        spec=target.spec, layout=target.layout, runtime_bin=target.runtime.path / "bin", secrets=secrets,
        db_url=target.db_url, broker_url=ctx.settings.celery_broker_url,
    )
    if target.run_as is not None:
        env.update(target.run_as.env(home=target.layout.root))
    wrapper: list[str] = []
    if target.startup_script is not None:
        wrapper = startup.wrap(env, python=target.runtime.python, script=target.startup_script,
                               timeout=ctx.settings.startup_timeout)
    major = parse_version(target.spec.airflow_version)[0]
    names = roles(target.spec)
    digests = airflow_config.config_digests(target.cfg_text, names)
    spec = target.spec
    workers = None
    if spec.executor == Executor.celery:
        assert spec.worker_concurrency is not None and spec.max_workers is not None
        workers = WorkerPlan(concurrency=spec.worker_concurrency, queue=airflow_config.celery_queue(target.layout),
                             hostname_suffix=target.env_id, min_workers=spec.min_workers, max_workers=spec.max_workers,
                             ready_files=airflow_config.workers_report_ready(target.cfg_text, env))
    return LaunchPlan(
        env_id=target.env_id, major=major, airflow_bin=target.runtime.airflow,
        env=env, root=target.layout.root, web_port=target.ports["web"],
        start_seconds=ctx.settings.start_seconds, start_retries=ctx.settings.start_retries,
        stable_seconds=ctx.settings.stable_seconds, wrapper=wrapper,
        drain_seconds=ctx.settings.drain_seconds, schedulers=spec.schedulers or 1, workers=workers,
        worker_drain_seconds=ctx.settings.worker_drain_seconds,
        fork=ctx.settings.fork_components, fork_ready_timeout=ctx.settings.fork_ready_timeout,
        run_as=target.run_as, heartbeat_stale_seconds=ctx.settings.heartbeat_stale_seconds,
        component_env={n: {**airflow_config.component_env(target.spec, n), "HANGAR_CONFIG_DIGEST": digests[n]}
                       for n in names},
    )



def launch(ctx: Context, journal: Journal, target: Target) -> EnvironmentProcesses:
    """Start what does not run; replace what runs differently. The components that do not hold
    the web port are replaced together, their start proofs overlapping, and each must be
    healthy and running its Airflow job before the web server is replaced, last (the
    scheduler drains, see Component.replace)."""
    journal.record("starting components")
    processes, changed = ctx.backend.launch(launch_plan(ctx, target), adopt=True)
    together = [name for name in changed if name != processes.web]
    web = [name for name in changed if name == processes.web]
    _replace(journal, processes, together)
    if web:  # its fork server imports the web server's routes meanwhile, and the old one still serves
        processes.warm_web()
    _proven(ctx, journal, processes, together, target.db_url)
    _replace(journal, processes, web)
    _proven(ctx, journal, processes, web, target.db_url)
    return processes


def _replace(journal: Journal, processes: EnvironmentProcesses, names: list[str]) -> None:
    for name in names:
        draining = processes.components[name].replace == "drain"
        journal.record(f"replacing {name}" + (" (its running tasks finish first)" if draining else ""))
        processes.replace(name)


def _proven(ctx: Context, journal: Journal, processes: EnvironmentProcesses, names: list[str], db_url: str) -> None:
    """Each of `names` runs its Airflow job (which counts as its start), then all are healthy."""
    for name in names:
        wait_job(ctx, journal, processes, name, db_url)
    if names:
        wait_ready(ctx, journal, processes)


def relaunch(ctx: Context, journal: Journal, target: Target) -> EnvironmentProcesses:
    """`launch`, restarting every component whose environment is not this plan's.

    A control plane that has not launched the environment itself (it restarted) would
    adopt processes started with an unknown fernet key, so those are stopped first."""
    if ctx.backend.get(target.env_id) is None:
        ctx.backend.stop_environment(target.env_id, target.layout.root)
    return launch(ctx, journal, target)



def wait_job(ctx: Context, journal: Journal, processes: EnvironmentProcesses, name: str, db_url: str) -> None:
    """A replaced component counts as up once its Airflow job runs: staying up a few seconds
    is not enough, since an Airflow component may import for longer than that before it
    fails on its configuration, and it is proof enough (it need not stay up start_seconds)."""
    job_type = metadb.COMPONENT_JOBS.get(processes.components[name].role)
    process = processes.processes[name]
    if job_type is None or process.create_time is None:
        return
    deadline = time.monotonic() + ctx.settings.ready_timeout
    while not metadb.job_running_since(db_url, job_type=job_type, since=process.create_time - 1):
        health = processes.health()
        if health.fatal or processes.processes[name] is not process or process.failures:
            raise ComponentFailed(f"{name} did not start: {health.reason or process.reason}\n{log_tail(processes)}")
        if time.monotonic() > deadline:
            raise ComponentFailed(f"{name} started no {job_type} within {ctx.settings.ready_timeout:.0f} s\n"
                                  f"{log_tail(processes)}")
        journal.progress(f"waiting for {name} to start its {job_type}")
        time.sleep(0.5)
    processes.proved(name, process)



def wait_ready(ctx: Context, journal: Journal, processes: EnvironmentProcesses) -> None:
    """Until every component is healthy and stable; ComponentFailed when one goes FATAL or time runs out."""
    deadline = time.monotonic() + ctx.settings.ready_timeout
    while True:
        health = ctx.backend.look(processes.plan.env_id) or processes.health()
        # a component that crashed during start must prove stable (or go FATAL) first
        if health.healthy and not health.flapping and not health.settling:
            return
        if health.fatal:
            raise ComponentFailed(f"{health.reason}\n{log_tail(processes)}")
        # a worker settles until Celery says it is ready, without making the environment unhealthy
        waiting = health.reason or (f"waiting for {', '.join(health.flapping)} to prove stable after a crash"
                                    if health.flapping else f"starting: {', '.join(health.settling)}")
        if time.monotonic() > deadline:
            raise ComponentFailed(f"not ready after {ctx.settings.ready_timeout:.0f} s: {waiting}\n"
                                  f"{log_tail(processes, also=health.settling)}")
        journal.progress(waiting, stop_if_closed=True)
        time.sleep(0.25)



def resume(ctx: Context, env_id: str, revision: int) -> EnvironmentProcesses:
    """At start-up: run `revision` again, adopting the processes that still run."""
    target = prepare(ctx, Journal(ctx, Work(env_id=env_id, operation_id=None)), revision)
    processes, _ = ctx.backend.launch(launch_plan(ctx, target), adopt=True)
    return processes




def log_tail(processes: EnvironmentProcesses, lines: int = 12, also: tuple[str, ...] = ()) -> str:
    """The last lines of the log of each component that failed, and of those named `also`, for an
    error message."""
    parts = []
    for name, process in processes.processes.items():
        if process.reason or name in also:
            tail = last_lines(process.spec.log_file, lines)
            parts.append(f"--- last lines of {name} log ---\n" + "\n".join(tail))
    return "\n".join(parts)
