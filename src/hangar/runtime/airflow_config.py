"""Per-environment Airflow configuration.

Split in two on purpose: `render_cfg` writes airflow.cfg with everything that is
not secret (it is safe on disk), and `process_env` builds the environment of a
component process with the secrets (fernet key, JWT secret, session secret, the
database URL), which are only ever stored encrypted by Hangar. User overrides
apply on top of Hangar's defaults; keys Hangar owns were refused by validation.
"""
from __future__ import annotations

import configparser
import hashlib
import io
import json
import os
from secrets import token_urlsafe
from dataclasses import dataclass
from pathlib import Path

from hangar.files import replace_symlink, write_atomically
from hangar.crypto import write_private
from hangar.schemas.classes import PRESETS, parallelism, scheduler_parallelism
from hangar.schemas.spec import AccessMode, Executor, Spec
from hangar.schemas.versions import parse_version
from hangar.runtime import broker

ADDON_PATH = Path(__file__).parent / "airflow_addon"
SECRET_NAMES = ("fernet_key", "jwt_secret", "secret_key")

# How long a replaced scheduler may take to let its running tasks finish (Settings.drain_seconds).
DRAIN_SECONDS = 240.0

# Airflow's own Celery configuration, from a module that also writes a worker's ready file on
# Celery's worker_ready (hangar_airflow.celery_ready): Hangar counts a worker as RUNNING then.
CELERY_READY_CONFIG = "hangar_airflow.celery_ready.CELERY_CONFIG"

# Scheduling latency knobs that matter on a small machine: the defaults were chosen
# for big deployments and make short tasks wait on heartbeats.
_FAST = {
    "scheduler": {"scheduler_heartbeat_sec": "2", "task_queued_timeout": "600"},
}


@dataclass(frozen=True, kw_only=True)
class EnvironmentLayout:
    """Where an environment keeps its files: HANGAR_HOME/environments/<id> on the control plane,
    <home>/environments/<name> on a joined host (`joined_host=True`, hangar.runtime.remote_worker).

    Both ends have the same shape; only what `create` makes differs: the control plane's
    components need the login plugin and the api-server's passwords file, a joined host keeps
    versions of the DAGs and plugins side by side and links the live ones."""

    root: Path
    joined_host: bool = False

    @property
    def cfg(self) -> Path:
        return self.root / "airflow.cfg"

    @property
    def dags(self) -> Path:
        """Where DAGs from a bucket are mirrored (a local `dags` folder is used in place); on a
        joined host, each version of the DAGs as fetched."""
        return self.root / "dags"

    @property
    def dags_link(self) -> Path:
        """Airflow's dags_folder: a symlink to the revision's DAGs, so that a change of DAGs
        alone is a swap of the link that no component needs a restart to see."""
        return self.root / "dags-current"

    def point_dags_at(self, folder: str | Path) -> None:
        self.point(self.dags_link, folder)

    @staticmethod
    def point(link: Path, folder: str | Path) -> None:
        """Make `link` point at `folder` in one rename: Airflow sees the old or the new folder, never none."""
        replace_symlink(link, folder)

    @property
    def plugins(self) -> Path:
        return self.root / "plugins"

    @property
    def plugins_link(self) -> Path:
        """A joined host's plugins_folder: the live version under `plugins`."""
        return self.root / "plugins-current"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def passwords(self) -> Path:
        return self.root / "passwords.json"

    @property
    def state(self) -> Path:
        """What a joined host applied last (digests only, no secret)."""
        return self.root / "applied.json"

    def create(self) -> None:
        if self.joined_host:
            for path in (self.root, self.dags, self.plugins, self.logs, self.run):
                path.mkdir(parents=True, exist_ok=True)
            self.root.chmod(0o700)  # airflow.cfg is not secret, but the worker's logs may be
            return
        # every folder the environment's own processes write in (their user owns them, hand_over)
        for path in (self.root, self.plugins, self.logs, self.logs / "components", self.run):
            path.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        (self.plugins / "hangar_login.py").write_text("from hangar_airflow.plugin import HangarPlugin  # noqa: F401\n")
        if not self.passwords.exists():
            # Airflow 3's SimpleAuthManager prints a generated password into the api-server log
            # unless the user already has one. People log in with Hangar tokens, so this random
            # password is never used or shown.
            write_private(self.passwords, json.dumps({"admin": token_urlsafe(24)}).encode())


def bind_host(spec: Spec) -> str:
    """MWAA's WebserverAccessMode: PRIVATE_ONLY stays on loopback; the public modes listen everywhere."""
    return "127.0.0.1" if spec.webserver_access_mode == AccessMode.PRIVATE_ONLY else "0.0.0.0"


# Which of MWAA's log modules each component writes. On the local backend tasks run
# inside the scheduler's executor, so the scheduler takes the more verbose of its
# own, the worker and the task level.
LOG_MODULES = {
    "api-server": ("webserver",),
    "webserver": ("webserver",),
    "scheduler": ("scheduler", "worker", "task"),
    "dag-processor": ("dag_processing",),
    "triggerer": ("worker",),
    "worker": ("worker", "task"),
}
_VERBOSITY = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def component_env(spec: Spec, component: str) -> dict[str, str]:
    """Per-component additions to the process environment (log levels)."""
    levels = []
    for module in LOG_MODULES.get(component, ()):
        setting = getattr(spec.logging, module)
        levels.append(setting.log_level.value if setting.enabled else "CRITICAL")
    if not levels:
        return {}
    return {"AIRFLOW__LOGGING__LOGGING_LEVEL": min(levels, key=_VERBOSITY.index)}


# Which components read a configuration section; a section not named here is read by all.
# A change to airflow.cfg restarts only the components that read what changed.
SECTION_READERS = {
    "api": ("api-server",),
    "webserver": ("api-server", "webserver"),
    "fab": ("api-server", "webserver"),
    "scheduler": ("scheduler",),
    "dag_processor": ("dag-processor",),
    "triggerer": ("triggerer",),
    # the executor (in the scheduler) and the workers
    "celery": ("scheduler", "worker"),
    "celery_broker_transport_options": ("scheduler", "worker"),
}
# core options only the executor (inside the scheduler) reads
SCHEDULER_CORE_KEYS = frozenset({
    "parallelism", "max_active_tasks_per_dag", "max_active_runs_per_dag", "default_pool_task_slot_count",
})


def readers(section: str, key: str) -> tuple[str, ...] | None:
    """The components that read `section.key`, or None for all of them."""
    if section == "core" and key in SCHEDULER_CORE_KEYS:
        return ("scheduler",)
    return SECTION_READERS.get(section)


def config_digests(cfg_text: str, components: list[str]) -> dict[str, str]:
    """Per component, a digest of the configuration it reads (see SECTION_READERS)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(cfg_text)
    seen: dict[str, list[str]] = {name: [] for name in components}
    for section in parser.sections():
        for key, value in parser[section].items():
            wanted = readers(section, key)
            for name in components:
                if wanted is None or name in wanted:
                    seen[name].append(f"{section}.{key}={value}")
    return {name: hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()[:16] for name, lines in seen.items()}


def base_url(ports: dict[str, int]) -> str:
    return f"http://127.0.0.1:{ports['web']}"


def celery_queue(layout: EnvironmentLayout) -> str:
    """The environment's own queue (and exchange) on the shared broker."""
    return broker.isolation("", layout.root.name).queue


def hangar_options(
    *, spec: Spec, layout: EnvironmentLayout, ports: dict[str, int], plugins_dir: Path | None = None,
    drain_seconds: float = DRAIN_SECONDS, broker_url: str | None = None, statsd_port: int = 0,
) -> dict[str, dict[str, str]]:
    major = parse_version(spec.airflow_version)[0]
    preset = PRESETS[spec.environment_class]
    celery = spec.executor == Executor.celery
    assert spec.max_workers is not None and spec.worker_concurrency is not None
    # Celery: as many task slots as the most workers run; local: the class's slots shared among the schedulers
    slots = spec.worker_concurrency * spec.max_workers if celery else \
        scheduler_parallelism(preset, max_workers=spec.max_workers, schedulers=spec.schedulers or 1)
    total = spec.worker_concurrency * spec.max_workers if celery else parallelism(preset, max_workers=spec.max_workers)
    url = base_url(ports)
    options: dict[str, dict[str, str]] = {
        "core": {
            "dags_folder": str(layout.dags_link),
            "plugins_folder": str(plugins_dir or layout.plugins),
            "executor": "LocalExecutor",
            "load_examples": "False",
            "parallelism": str(slots),
            "max_active_tasks_per_dag": str(preset.max_active_tasks_per_dag or total),
            "max_active_runs_per_dag": str(preset.max_active_runs_per_dag),
            "default_pool_task_slot_count": str(preset.default_pool_slots),
        },
        "logging": {
            "base_log_folder": str(layout.logs),
            "worker_log_server_port": str(ports["worker_logs"]),
            "trigger_log_server_port": str(ports["trigger_logs"]),
        },
        "scheduler": {
            **_FAST["scheduler"],
            # A replaced scheduler drains: it no longer heartbeats while its running tasks finish.
            # Every scheduler that starts meanwhile resets the tasks of schedulers silent for longer
            # than this threshold, so it covers the drain (Airflow's own task heartbeat timeout,
            # which finds killed tasks, is 300 s).
            "scheduler_health_check_threshold": str(int(drain_seconds)),
        },
    }
    if statsd_port:
        # every component's StatsD metrics to the control plane, named by the environment's id
        # (hangar.telemetry.statsd); a user may still turn them off with metrics.statsd_on
        options["metrics"] = {"statsd_on": "True", "statsd_host": "127.0.0.1", "statsd_port": str(statsd_port),
                              "statsd_prefix": f"airflow.{layout.root.name}"}
    if celery:
        isolation = broker.isolation(broker_url or "", layout.root.name)
        options["core"]["executor"] = "CeleryExecutor"
        options["operators"] = {"default_queue": isolation.queue}
        options["celery"] = {
            "worker_concurrency": str(spec.worker_concurrency),
            # a worker reserves no more than it runs, so a worker that is leaving holds no waiting task
            "worker_prefetch_multiplier": "1",
            "task_acks_late": "True",
            # sending a task to the broker on a busy 2-core machine can take more than Airflow's 1 s
            "operation_timeout": "10",
            "sync_parallelism": "1",
            # a user's own celery.celery_config_options replaces this (render_cfg), and its workers
            # then count as RUNNING after start_seconds, as they write no ready file (workers_report_ready)
            "celery_config_options": CELERY_READY_CONFIG,
        }
        if isolation.transport_options:
            options["celery_broker_transport_options"] = dict(isolation.transport_options)
    if major >= 3:
        options["core"]["execution_api_server_url"] = f"{url}/execution/"
        # A task reaches the execution API through the api-server, which an update replaces (it holds
        # the port, so it stops before its successor starts): Airflow's default 5 retries give up
        # after ~31 s, less than a busy machine needs to restart it; 10 retries wait ~6 minutes.
        options["workers"] = {"execution_api_retries": "10"}
        options["core"]["simple_auth_manager_users"] = "admin:admin"
        options["core"]["simple_auth_manager_passwords_file"] = str(layout.passwords)
        options["api"] = {"host": bind_host(spec), "port": str(ports["web"]), "base_url": url}
        options["api_auth"] = {"jwt_audience": "apache-airflow"}
        options["dag_processor"] = {"parsing_processes": str(preset.parsing_processes),
                                    "refresh_interval": _list_interval(spec)}
        if spec.git is not None:  # the processor looks for a due refresh every second, not every 5
            options["dag_processor"]["bundle_refresh_check_interval"] = "1"
        options["logging"]["dag_processor_child_process_log_directory"] = str(layout.logs / "dag_processor")
        # LocalExecutor keeps Airflow's default `fork`: measured on a 100-task fan-out, a
        # preloaded forkserver cost 97 CPU-seconds against fork's 20, because every task then
        # re-imports what a forked child inherits (see bench/RESULTS.md).
    else:
        options["scheduler"]["parsing_processes"] = str(preset.parsing_processes)  # [scheduler] on Airflow 2
        options["webserver"] = {
            "web_server_host": bind_host(spec), "web_server_port": str(ports["web"]), "base_url": url,
            "workers": "2", "warn_deployment_exposure": "False",
        }
        options["api"] = {"auth_backends": "hangar_airflow.auth_backend,airflow.providers.fab.auth_manager.api.auth.backend.session"}
        options["scheduler"]["dag_dir_list_interval"] = _list_interval(spec)
        options["scheduler"]["child_process_log_directory"] = str(layout.logs / "scheduler")
    return options


def workers_report_ready(cfg_text: str, env: dict[str, str]) -> bool:
    """Whether Celery workers that run with this airflow.cfg and environment load Hangar's
    celery_config_options, and so write their ready file: not when the user set their own (in
    the configuration, or as AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS, which Airflow reads first)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(cfg_text)
    configured = parser.get("celery", "celery_config_options", fallback=None)
    return env.get("AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS", configured) == CELERY_READY_CONFIG


def _list_interval(spec: Spec) -> str:
    """Seconds between listings of the DAG folder: 2 when a push webhook switches it (a new file is
    then parsed within seconds of the push), else 5."""
    return "2" if spec.git is not None else "5"


def render_cfg(*, spec: Spec, layout: EnvironmentLayout, ports: dict[str, int], plugins_dir: Path | None = None,
               drain_seconds: float = DRAIN_SECONDS, broker_url: str | None = None, statsd_port: int = 0) -> str:
    options = hangar_options(spec=spec, layout=layout, ports=ports, plugins_dir=plugins_dir, drain_seconds=drain_seconds,
                             broker_url=broker_url, statsd_port=statsd_port)
    for dotted, value in spec.airflow_configuration_options.items():
        section, key = dotted.split(".", 1)
        options.setdefault(section, {})[key] = value
    parser = configparser.ConfigParser(interpolation=None)
    for section, values in options.items():
        # Airflow reads airflow.cfg with %-interpolation: a literal % is written %%
        parser[section] = {key: value.replace("%", "%%") for key, value in values.items()}
    buffer = io.StringIO()
    parser.write(buffer)
    return buffer.getvalue()


def write_cfg(*, spec: Spec, layout: EnvironmentLayout, ports: dict[str, int], plugins_dir: Path | None = None) -> None:
    write_cfg_text(layout, render_cfg(spec=spec, layout=layout, ports=ports, plugins_dir=plugins_dir))


def write_cfg_text(layout: EnvironmentLayout, text: str) -> None:
    write_cfg_file(layout.cfg, text)


def write_cfg_file(path: Path, text: str) -> None:
    write_atomically(path, text.encode())


def process_env(
    *, spec: Spec, layout: EnvironmentLayout, runtime_bin: Path, secrets: dict[str, str], db_url: str,
    broker_url: str | None = None,
) -> dict[str, str]:
    major = parse_version(spec.airflow_version)[0]
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "HANGAR_", "VIRTUAL_ENV", "PYTHON"))}
    env = {
        **inherited,
        **spec.environment_variables,
        "AIRFLOW_HOME": str(layout.root),
        "AIRFLOW_CONFIG": str(layout.cfg),
        "PYTHONPATH": str(ADDON_PATH),
        "PATH": f"{runtime_bin}{os.pathsep}{inherited.get('PATH', '/usr/bin:/bin')}",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
        "AIRFLOW__CORE__FERNET_KEY": secrets["fernet_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets["jwt_secret"],
    }
    if major >= 3:
        env["AIRFLOW__API__SECRET_KEY"] = secrets["secret_key"]
    else:
        env["AIRFLOW__WEBSERVER__SECRET_KEY"] = secrets["secret_key"]
        # gunicorn's control socket lives in ~ and would be shared by every environment
        env["GUNICORN_CMD_ARGS"] = "--no-control-socket"
    if spec.executor == Executor.celery and broker_url:
        env["AIRFLOW__CELERY__BROKER_URL"] = broker_url
        # Celery's results go to the environment's own metadata database
        env["AIRFLOW__CELERY__RESULT_BACKEND"] = f"db+{db_url}"
    return env
