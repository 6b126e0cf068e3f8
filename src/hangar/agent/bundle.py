"""What applying a worker bundle takes on a joined host: the runtime, the DAGs and plugins, and
the spec of the worker process that runs with them.

The runtime is built from the bundle's inputs and must come out with the control plane's key:
two Hangar installations that build runtimes differently would run different packages, so the
join fails instead. DAGs and plugins are fetched as archives and made live by swapping a link
(hangar.runtime.remote_worker.install_version).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from rich.console import Console

from hangar.agent.client import ControlPlane
from hangar.agent.errors import JoinFailed
from hangar.agent.logs import say
from hangar.backend.components import worker_ready_file
from hangar.backend.process import ProcessSpec
from hangar.runtime import airflow_config, remote_worker, startup
from hangar.runtime.airflow_config import EnvironmentLayout
from hangar.runtime.venvs import Runtime, ensure_runtime, runtime_key
from hangar.schemas.worker_bundle import WorkerBundle
from hangar.settings import Settings

err = Console(stderr=True, highlight=False)


def runtime_for(bundle: WorkerBundle, *, root: Path, current: Runtime | None) -> Runtime:
    """The runtime `bundle` runs on, built under `root` unless `current` already is it."""
    if not bundle.celery:
        raise JoinFailed(f"environment {bundle.environment} does not run Celery workers")
    key = runtime_key(python=bundle.runtime_python, airflow_version=bundle.airflow_version,
                      requirements=bundle.requirements, epoch=bundle.runtime_epoch, celery=True)
    if key != bundle.runtime_key:
        raise JoinFailed(f"this host would build runtime {key} for {bundle.environment}, the control plane runs "
                         f"{bundle.runtime_key}: the two Hangar installations build runtimes differently; "
                         "install the control plane's Hangar version here")
    if current is not None and current.key == key:
        return current
    with err.status(f"runtime {key}: Python {bundle.runtime_python}, Airflow {bundle.airflow_version}",
                    spinner="dots") as status:
        runtime = ensure_runtime(root=root, python=bundle.runtime_python,
                                 airflow_version=bundle.airflow_version, requirements=bundle.requirements,
                                 progress=lambda text: status.update(f"runtime {key}: {text[:100]}"),
                                 epoch=bundle.runtime_epoch, celery=True)
    say(f"runtime {runtime.key} ready ({runtime.path})")
    return runtime


def install_part(plane: ControlPlane, layout: EnvironmentLayout, *, part: str, digest: str, parent: Path,
                 link: Path) -> None:
    """Fetch the DAGs or plugins (`part`) and make them live at `link`."""
    archive = layout.root / f".{part}.tar.gz.part"
    try:
        plane.download(part, archive)
        local = remote_worker.install_version(archive=archive, parent=parent, link=link)
    finally:
        archive.unlink(missing_ok=True)
    count = len(remote_worker.content_files(link))
    say(f"{part} {digest[:12]} in place ({count} files)" + ("" if local == digest else
                                                           "; they changed again meanwhile, fetched next time"))


def worker_spec(bundle: WorkerBundle, runtime: Runtime, cfg: str, *, index: int, layout: EnvironmentLayout,
                hostname: str, concurrency: int | None, plugins: str | None, settings: Settings,
                address: str | None = None) -> ProcessSpec:
    """Worker number `index` of this host (node <hostname>-<index>@<environment id>); `concurrency`
    None takes the environment's, `plugins` is the digest of the plugins in place, `address` the
    one the control plane reaches this host by (its tasks' hostname, for their logs)."""
    env = remote_worker.worker_env(bundle.env, layout=layout, runtime_bin=runtime.path / "bin", address=address)
    wrapper: list[str] = []
    if bundle.startup_script:
        script = startup.install_script(layout.root / "startup", bundle.startup_script)
        wrapper = startup.wrap(env, python=runtime.python, script=script, timeout=settings.startup_timeout)
    # what the worker reads from files: a change starts a new worker (as on the control plane)
    env["HANGAR_CONFIG_DIGEST"] = hashlib.sha256(f"{cfg}\0{plugins}".encode()).hexdigest()[:16]
    name = f"worker-{index}"
    node = f"{hostname}-{index}@{bundle.environment_id}"
    # RUNNING once Celery is ready, as on the control plane (hangar.backend.environment_processes)
    ready = worker_ready_file(layout.run, name, env) if airflow_config.workers_report_ready(cfg, env) else None
    return ProcessSpec(
        name=name, argv=[*wrapper, str(runtime.airflow), *remote_worker.worker_args(
            concurrency=concurrency or bundle.worker_concurrency, queue=bundle.queue, node=node)],
        env=env, cwd=layout.root, log_file=layout.logs / "components" / f"{name}.log",
        pid_file=layout.run / f"{name}.pid", start_seconds=settings.start_seconds,
        start_retries=settings.start_retries, stable_seconds=settings.stable_seconds, ready_file=ready,
    )
