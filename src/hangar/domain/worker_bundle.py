"""The worker bundle: what a joined host needs to run an environment's Celery workers.

`hangar worker join` fetches it with a worker token (hangar.domain.workers) and builds the same
runtime, writes the same airflow.cfg and runs `airflow celery worker` on the environment's
queue. The DAGs and plugins come as archives; their digests let the host see a change.

Invariants:
- the bundle describes the revision that runs: its spec (requirements materialized from the
  bucket when they come from one), the airflow.cfg its components read now, and the DAGs and
  plugins folders that airflow.cfg names;
- secrets (the fernet, JWT and session keys, the database and broker URLs) leave the control
  plane only in this answer, to a live worker token of this environment; nothing here logs them;
- a loopback host in an address means "the control plane's machine", which to the joining host
  is the name it reached the control plane by: the broker URL, the metadata database URL and
  the API addresses in airflow.cfg are rewritten to that name;
- Celery's result backend is the metadata database, so an environment on the embedded
  database (a Unix socket on the control plane's machine) cannot have workers elsewhere and is
  refused with RemoteWorkersNeedReachableDatabase;
- what a worker does not need stays home: no PATH, PYTHONPATH, AIRFLOW_HOME or control-plane path
  travels in `env`; the host puts its own.
"""
from __future__ import annotations

import configparser
import io
import ipaddress
import os
import tempfile
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from hangar.buckets import store as buckets
from hangar.context import Context
from hangar.schemas.spec import AccessMode, Executor, Spec
from hangar.schemas.versions import parse_version
from hangar.domain.secrets import fernet_keys
from hangar.domain.workers import ExecutorNotCelery, VerifiedWorkerToken
from hangar.errors import CeleryBrokerNotConfigured, EnvironmentBusy, HangarError
from hangar.runtime import airflow_config, remote_worker
from hangar.runtime.venvs import runtime_key
from hangar.schemas.worker_bundle import WorkerBundle
from hangar.store import repository

Part = Literal["dags", "plugins"]

# environment variables holding an address the joining host must reach
ADDRESS_VARIABLES = ("AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CELERY__RESULT_BACKEND",
                     "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
# airflow.cfg options holding one (the execution API tasks call, the links Airflow writes)
ADDRESS_OPTIONS = (("core", "execution_api_server_url"), ("api", "base_url"), ("webserver", "base_url"))


class RemoteWorkersNeedReachableDatabase(EnvironmentBusy):
    """Answered 409, as a request that conflicts with how the environment is set up."""

    code = "REMOTE_WORKERS_NEED_REACHABLE_DATABASE"

    def __init__(self, name: str) -> None:
        HangarError.__init__(self, (
            f"environment {name!r} cannot take workers from other hosts: Celery's result backend is the "
            "environment's metadata database, and the embedded metadata database is reachable only on the "
            "control plane's machine; create the environment with --metadata-db-url on a PostgreSQL the "
            "workers' hosts can reach"))
        self.name = name


def worker_bundle(ctx: Context, *, caller: VerifiedWorkerToken, host: str) -> WorkerBundle:
    """The running revision as a host that reached the control plane at `host` runs its workers."""

    settings = ctx.settings
    with ctx.store.session() as session:
        env = repository.get_by_id(session, caller.environment_id)
        # what runs, or what will run first: the refusals below do not wait for it to start
        spec = repository.get_spec(session, env.id, env.running_revision or env.revision)
        secrets = repository.get_secrets(session, ctx.envelope, env_id=env.id)
        name, status, revision, epoch = env.name, env.status, env.running_revision, env.runtime_epoch
    if spec.executor != Executor.celery:
        raise ExecutorNotCelery(name, spec.executor.value)
    db_url = secrets.get("metadata_db_url")
    if not db_url:
        raise RemoteWorkersNeedReachableDatabase(name)
    if revision is None:
        raise EnvironmentBusy(name, status)
    if not settings.celery_broker_url:
        raise CeleryBrokerNotConfigured()
    secrets["fernet_key"] = fernet_keys(secrets)  # "new,old" while a rotation is under way, as the components run

    layout = airflow_config.EnvironmentLayout(root=settings.environments_dir / env.id)
    cfg_text = _live_cfg(layout, name=name, status="starting")
    requirements = buckets.pinned_requirements(ctx, spec)
    full = airflow_config.process_env(spec=spec, layout=layout, runtime_bin=Path(os.devnull), secrets=secrets,
                                      db_url=db_url, broker_url=settings.celery_broker_url)
    # process_env drops the control plane's own AIRFLOW* variables, so these are Hangar's and the spec's
    worker_env = {k: v for k, v in full.items() if k.startswith("AIRFLOW__") or k in spec.environment_variables}
    worker_env.update(airflow_config.component_env(spec, "worker"))
    for variable in ADDRESS_VARIABLES:
        if variable in worker_env:
            worker_env[variable] = rewrite_loopback(worker_env[variable], host=host)
    assert spec.worker_concurrency is not None
    return WorkerBundle(
        environment_id=env.id, environment=name, revision=revision, airflow_version=spec.airflow_version,
        requirements=requirements, runtime_python=settings.runtime_python, runtime_epoch=epoch,
        runtime_key=runtime_key(python=settings.runtime_python, airflow_version=spec.airflow_version,
                                requirements=requirements, epoch=epoch, celery=True),
        airflow_cfg=metrics_to(rewrite_cfg_addresses(cfg_text, host=host), host=host,
                               received=not is_loopback(settings.statsd_host)), env=worker_env,
        queue=airflow_config.celery_queue(layout), worker_concurrency=spec.worker_concurrency,
        startup_script=spec.startup_script,
        dags_sha256=remote_worker.content_sha256(layout.dags_link),
        plugins_sha256=remote_worker.content_sha256(_plugins_folder(cfg_text, layout)),
        warnings=_warnings(spec, cfg_text, host=host, metrics_received=not is_loopback(settings.statsd_host)),
    )


def bundle_archive(ctx: Context, *, caller: VerifiedWorkerToken, part: Part) -> Path:
    """A tar.gz of the running DAGs or plugins folder, in a temporary file the caller removes."""
    with ctx.store.session() as session:
        env = repository.get_by_id(session, caller.environment_id)
        name, status, running = env.name, env.status, env.running_revision
    layout = airflow_config.EnvironmentLayout(root=ctx.settings.environments_dir / caller.environment_id)
    if running is None:
        raise EnvironmentBusy(name, status)
    folder = layout.dags_link if part == "dags" else _plugins_folder(_live_cfg(layout, name=name, status=status), layout)
    handle, path = tempfile.mkstemp(prefix=f"hangar-{part}-", suffix=".tar.gz")
    os.close(handle)
    try:
        remote_worker.pack(folder, Path(path))
    except BaseException:
        os.unlink(path)
        raise
    return Path(path)


# --- addresses ---


def is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def rewrite_loopback(url: str, *, host: str) -> str:
    """`url` with a loopback host replaced by `host`; user, password, port, path and query kept."""
    parts = urlsplit(url)
    if not parts.netloc or not parts.hostname or not is_loopback(parts.hostname):
        return url
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if hostport.startswith("["):  # an IPv6 literal: [::1]:5432
        port = hostport[hostport.index("]") + 1:]
    else:
        port = hostport[hostport.index(":"):] if ":" in hostport else ""
    new_host = f"[{host}]" if ":" in host else host
    return urlunsplit(parts._replace(netloc=f"{userinfo}{at}{new_host}{port}"))


def rewrite_cfg_addresses(cfg_text: str, *, host: str) -> str:
    """airflow.cfg with the loopback hosts of ADDRESS_OPTIONS replaced by `host`."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(cfg_text)
    for section, key in ADDRESS_OPTIONS:
        if parser.has_option(section, key):
            parser[section][key] = rewrite_loopback(parser[section][key], host=host)
    buffer = io.StringIO()
    parser.write(buffer)
    return buffer.getvalue()


def metrics_to(cfg_text: str, *, host: str, received: bool) -> str:
    """airflow.cfg with the StatsD host (the control plane's loopback) replaced by `host` when the
    control plane receives metrics beyond its loopback (HANGAR_STATSD_HOST)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(cfg_text)
    if not received or not is_loopback(parser.get("metrics", "statsd_host", fallback="")):
        return cfg_text
    parser["metrics"]["statsd_host"] = host
    buffer = io.StringIO()
    parser.write(buffer)
    return buffer.getvalue()


# --- helpers ---


def _live_cfg(layout: airflow_config.EnvironmentLayout, *, name: str, status: str) -> str:
    try:
        return layout.cfg.read_text()
    except FileNotFoundError:  # no revision went live on this control plane yet
        raise EnvironmentBusy(name, status) from None


def _plugins_folder(cfg_text: str, layout: airflow_config.EnvironmentLayout) -> Path:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(cfg_text)
    return Path(parser.get("core", "plugins_folder", fallback=str(layout.plugins)).replace("%%", "%"))


def _warnings(spec: Spec, cfg_text: str, *, host: str, metrics_received: bool = False) -> list[str]:
    found = []
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(cfg_text)
    if parser.has_option("metrics", "statsd_host") and not metrics_received and not is_loopback(host):
        found.append("the control plane receives StatsD metrics on its loopback only (HANGAR_STATSD_HOST): "
                     "this host's worker metrics are not collected")
    api = parser.get("core", "execution_api_server_url", fallback=None)
    if (parse_version(spec.airflow_version)[0] >= 3 and api and spec.webserver_access_mode == AccessMode.PRIVATE_ONLY
            and not is_loopback(host)):
        found.append(f"the environment's API server listens on the control plane's loopback only "
                     f"(webserver_access_mode {AccessMode.PRIVATE_ONLY.value}), and tasks here call it at "
                     f"{rewrite_loopback(api, host=host)}: that needs a relay on the control plane's machine, or "
                     f"webserver_access_mode {AccessMode.PUBLIC_ONLY.value}")
    return found
