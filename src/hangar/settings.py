"""One Settings class for the control plane.

Every value can come from the environment (prefix HANGAR_) or from CLI flags that
build the object. Paths under `home`, and `runtimes_dir` (by default under `home`), are
the only places Hangar writes.
"""
from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    return Path("~/.hangar").expanduser()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HANGAR_", extra="ignore")

    home: Path = Field(default_factory=default_home)
    # Runtimes (uv-built venvs with Airflow) and their template database dumps; default
    # HANGAR_HOME/runtimes. Several homes and control planes on one machine may share one: a
    # runtime is built once per key and holds no environment's secrets.
    runtimes_dir: Path = Field(default=None, validate_default=True)
    host: str = "127.0.0.1"
    port: int = 8765
    # Ports handed to environments are taken from this range, skipping ports in use.
    env_port_start: int = 28000
    env_port_end: int = 28999
    # Python used to build runtimes; the runtime key includes its version.
    runtime_python: str = "3.11"
    # Start components by forking them from a per-environment process that has imported Airflow
    # already (hangar_airflow.forkserver), instead of a fresh interpreter each. Environments with a
    # startup script always start fresh ones: the script's exports may change what Airflow reads.
    fork_components: bool = True
    # Seconds a fork server may take to import Airflow; past it, components start fresh.
    fork_ready_timeout: float = Field(default=60.0, gt=0)
    # Seconds a component must stay up before STARTING becomes RUNNING (a Celery worker that writes
    # a ready file becomes RUNNING when Celery reports it ready instead).
    start_seconds: float = 3.0
    # Seconds a restarted component must stay up before its failures are forgotten.
    stable_seconds: float = 60.0
    # Failed starts in a row before a component is FATAL.
    start_retries: int = 3
    # Seconds an environment may take to become healthy before its create fails.
    ready_timeout: float = 180.0
    # Seconds between supervisor checks.
    monitor_interval: float = 1.0
    # Seconds a replaced scheduler may take to let its running tasks finish before it is killed.
    # Kept below Airflow's orphaned_tasks_check_interval (300 s), after which the new scheduler
    # would reset the old one's tasks.
    drain_seconds: float = 240.0
    # Seconds a startup script may run before each component starts (MWAA's limit is 5 minutes).
    startup_timeout: float = 300.0
    # Seconds between checks for patched releases of environments' installed packages; a hit
    # only records pending maintenance, which runs in the environment's weekly window.
    maintenance_check_seconds: float = 21600.0
    # Seconds between checks for environments whose pending maintenance may start in their window.
    maintenance_window_check_seconds: float = Field(default=15.0, gt=0)
    # Seconds between checks for scheduled snapshots that are due and ones retention lets go.
    snapshot_schedule_check_seconds: float = Field(default=15.0, gt=0)
    # Seconds without a heartbeat after which a joined worker host is LOST.
    worker_lost_seconds: float = Field(default=30.0, gt=0)
    # The broker Celery environments use (redis://... or amqp://...). Each environment gets its
    # own queue (and, on Redis, its own key prefix) on it. A secret: never logged or shown.
    celery_broker_url: str | None = None
    # Seconds between autoscaler readings of every Celery environment's queued and running tasks.
    autoscale_interval: float = 2.0
    # Seconds the demand must stay below the running workers before one is scaled down.
    autoscale_cooldown: float = 120.0
    # Seconds a worker being scaled down may take to finish its tasks (Celery's warm shutdown)
    # before it is killed: long, since the point of a warm shutdown is that no task is killed.
    worker_drain_seconds: float = 21600.0
    # Hours of autoscaler readings kept.
    worker_samples_hours: float = 24.0
    # Seconds after which an Airflow job's newest heartbeat (scheduler, triggerer, dag-processor, as
    # the web server's health endpoint reports it) makes its environment UNAVAILABLE.
    heartbeat_stale_seconds: float = Field(default=30.0, gt=0)
    # The UDP port on 127.0.0.1 where the control plane receives every environment's StatsD
    # metrics; 0: none are sent.
    statsd_port: int = Field(default=8125, ge=0, le=65535)
    # The address that receiver listens on. Loopback by default: a joined host's workers then keep
    # their metrics (its worker bundle says so); listening where they reach it sends theirs too.
    statsd_host: str = "127.0.0.1"
    # Seconds between samples of each environment's metrics kept for `hangar env metrics`.
    metrics_sample_seconds: float = Field(default=10.0, gt=0)
    # Days of metric samples kept.
    metrics_retention_days: float = Field(default=15.0, gt=0)
    # Seconds between checks of every alert rule (deliveries are sent twice as often).
    alert_interval: float = Field(default=1.0, gt=0)
    # A failed alert delivery is retried after this many seconds, doubling each time ...
    alert_retry_seconds: float = Field(default=5.0, gt=0)
    # ... until it has been tried this many times.
    alert_delivery_attempts: int = Field(default=8, ge=1)
    # Seconds between rounds of log shipping (components' output to the stored, queryable logs).
    log_interval: float = Field(default=0.5, gt=0)
    # A component's stored log file is rotated past this many bytes.
    log_segment_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    # The most bytes of rotated logs one environment keeps; the oldest go first.
    log_max_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    # Days of logs kept.
    log_retention_days: float = Field(default=30.0, gt=0)
    # A console session ends after this many minutes without a request (each request extends it) ...
    console_idle_minutes: float = Field(default=60.0, gt=0)
    # ... and this many hours after sign-in, however active.
    console_session_hours: float = Field(default=12.0, gt=0)
    # Seconds a git fetch of an environment's DAGs may take before it is given up on.
    git_timeout: float = Field(default=120.0, gt=0)
    # Days of audit entries kept; older ones are removed as new ones are written.
    audit_retention_days: float = Field(default=90.0, gt=0)
    # The most task processes one environment may run at once (LocalExecutor: parallelism x
    # schedulers; Celery: concurrency x max_workers); requests over it are refused.
    max_task_processes: int = Field(default=256, gt=0)
    # an isolated environment's tasks (processes and threads) and memory; None: from its class
    environment_max_processes: int | None = Field(default=None, gt=0)
    environment_memory_mib: int | None = Field(default=None, gt=0)
    # Each environment runs as its own system user, with its own database role (SECURITY.md).
    # Unset: when the control plane runs as root, which it needs for this.
    isolation: bool | None = None
    # The largest request body the API reads (bytes); larger ones get 413 before they are read.
    max_request_bytes: int = Field(default=1024 * 1024, gt=0)
    # The largest bucket object upload (bytes), streamed to disk as it arrives.
    max_upload_bytes: int = Field(default=1024 ** 3, gt=0)

    @model_validator(mode="after")
    def _port_range(self) -> "Settings":
        if self.env_port_end < self.env_port_start:
            raise ValueError(f"env_port_end {self.env_port_end} is below env_port_start {self.env_port_start}")
        return self

    @field_validator("runtimes_dir", mode="before")
    @classmethod
    def _runtimes_dir_default(cls, value: object, info: ValidationInfo) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            if "home" not in info.data:
                return value  # home itself failed validation, which is the error to report
            value = info.data["home"] / "runtimes"
        # absolute: the path is written into each runtime's scripts
        return Path(value).expanduser().absolute() if isinstance(value, (str, Path)) else value

    @property
    def isolated(self) -> bool:
        return self.isolation if self.isolation is not None else os.geteuid() == 0

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    @property
    def environments_dir(self) -> Path:
        return self.home / "environments"

    @property
    def git_dir(self) -> Path:
        """Each git-sourced environment's repository cache and commit folders, one folder per
        environment id, owned by the control plane: never inside the environment's own folder,
        whose user could otherwise plant git configuration that the control plane would run."""
        return self.home / "git"

    @property
    def logs_dir(self) -> Path:
        """Each environment's stored logs (hangar.logstore), one folder per environment id."""
        return self.home / "logs"

    @property
    def snapshots_dir(self) -> Path:
        """Snapshot archives, one folder per environment id."""
        return self.home / "snapshots"

    @property
    def pgdata_dir(self) -> Path:
        return self.home / "pgdata"

    @property
    def api_key_file(self) -> Path:
        return self.home / "admin.key"

    @property
    def master_key_file(self) -> Path:
        return self.home / "master.key"

    @property
    def server_pid_file(self) -> Path:
        return self.home / "server.pid"

    @property
    def server_log_file(self) -> Path:
        return self.home / "server.log"

    @property
    def server_url_file(self) -> Path:
        return self.home / "server.url"

    def ensure_dirs(self) -> None:
        # HANGAR_HOME itself stays traversable: the embedded PostgreSQL runs as its own user
        # when Hangar runs as root. Secrets are protected by their own 0600/0700 modes.
        for path in (self.home, self.state_dir, self.runtimes_dir, self.environments_dir, self.logs_dir, self.git_dir):
            path.mkdir(parents=True, exist_ok=True)
        self.git_dir.chmod(0o711)  # passed through to an environment's own folder, never listed
        self.state_dir.chmod(0o700)
        self.logs_dir.chmod(0o700)
        if self.isolated:
            # each environment's user may pass through to its own folder (0700, its own) and read
            # the runtimes; it may list neither the environments nor the buckets
            self.environments_dir.chmod(0o711)
            (self.home / "buckets").mkdir(exist_ok=True)
            (self.home / "buckets").chmod(0o700)
