"""The environment spec: one pydantic model family (Create / Update / Public).

A spec is what the user asked for. Every create or update stores it as a new
immutable revision (hangar.store). Validation here is the only place user input
is judged; errors name the field or key that is wrong.
"""
from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NewType

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hangar.schemas.classes import PRESETS, EnvironmentClass
from hangar.schemas.git import GitDags
from hangar.schemas.requirements import check_requirements
from hangar.schemas.versions import DEFAULT_AIRFLOW_VERSION, check_version
from hangar.errors import ValidationFailed

EnvironmentId = NewType("EnvironmentId", str)

NAME_PATTERN = r"^[a-zA-Z][0-9a-zA-Z\-_]*$"
_CONFIG_KEY = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Options Hangar renders itself; a user override would break the environment or its security.
OWNED_CONFIG_KEYS = frozenset({
    "core.executor", "core.fernet_key", "core.dags_folder", "core.plugins_folder",
    "core.execution_api_server_url", "core.sql_alchemy_conn", "core.internal_api_secret_key",
    "database.sql_alchemy_conn", "database.sql_alchemy_conn_async",
    "api.secret_key", "api.port", "api.host", "api.base_url",
    "api_auth.jwt_secret", "api_auth.jwt_private_key_path", "api_auth.jwt_audience",
    "webserver.secret_key", "webserver.web_server_port", "webserver.web_server_host",
    "webserver.base_url", "webserver.config_file",
    "logging.base_log_folder", "logging.dag_processor_child_process_log_directory",
    "logging.worker_log_server_port", "logging.trigger_log_server_port",
    "scheduler.child_process_log_directory",
    "celery.broker_url", "celery.result_backend",
    "metrics.statsd_host", "metrics.statsd_port", "metrics.statsd_prefix",
    "core.auth_manager", "api.auth_backends",
})
OWNED_ENV_VARS = frozenset({"AIRFLOW_HOME", "AIRFLOW_CONFIG", "PYTHONPATH", "PATH", "VIRTUAL_ENV"})

Name = Annotated[str, Field(min_length=1, max_length=80, pattern=NAME_PATTERN)]


def _owned(key: str) -> bool:
    """`key` or its _cmd/_secret variant names an option Hangar owns."""
    return any(candidate in OWNED_CONFIG_KEYS for candidate in (key, key.removesuffix("_cmd"), key.removesuffix("_secret")))


def _check_config(options: dict[str, str]) -> dict[str, str]:
    for key in options:
        if not _CONFIG_KEY.fullmatch(key):
            raise ValueError(f"airflow_configuration_options key {key!r} must look like section.key (lower case)")
        if _owned(key):
            raise ValueError(f"airflow_configuration_options key {key!r} is managed by Hangar and cannot be set")
    return options


def _env_var_config_key(var: str) -> str | None:
    parts = var.split("__")
    if len(parts) >= 3 and parts[0] == "AIRFLOW":
        return f"{parts[1].lower()}.{parts[2].lower()}"
    return None


def _check_env(variables: dict[str, str]) -> dict[str, str]:
    for var in variables:
        if not _ENV_NAME.fullmatch(var):
            raise ValueError(f"environment_variables name {var!r} is not a valid variable name")
        if var in OWNED_ENV_VARS:
            raise ValueError(f"environment_variables name {var!r} is managed by Hangar and cannot be set")
        key = _env_var_config_key(var)
        if key is not None and _owned(key):
            raise ValueError(f"environment_variables name {var!r} sets {key!r}, which is managed by Hangar")
    return variables


def _check_dags(path: str) -> str:
    folder = Path(path).expanduser()
    if not folder.exists():
        raise ValueError(f"dags folder {path!r} does not exist")
    if not folder.is_dir():
        raise ValueError(f"dags {path!r} is not a folder")
    return str(folder.resolve())


def _check_plugins(path: str) -> str:
    target = Path(path).expanduser()
    if not target.exists():
        raise ValueError(f"plugins {path!r} does not exist")
    if target.is_file() and target.suffix != ".zip":
        raise ValueError(f"plugins {path!r} must be a folder or a .zip file")
    return str(target.resolve())


STARTUP_SCRIPT_MAX_BYTES = 64 * 1024


def _check_startup_script(text: str | None) -> str | None:
    if text is not None and len(text.encode()) > STARTUP_SCRIPT_MAX_BYTES:
        raise ValueError(f"startup_script is {len(text.encode())} bytes; at most {STARTUP_SCRIPT_MAX_BYTES} are allowed")
    return text


def _check_cron(expression: str | None) -> str | None:
    from croniter import croniter

    if expression is not None and not croniter.is_valid(expression):
        raise ValueError(f"snapshot_schedule {expression!r} is not a cron expression like '0 3 * * *'")
    return expression


def _check_requirements(text: str | None) -> str | None:
    if text is not None:
        try:
            check_requirements(text)
        except ValidationFailed as exc:
            raise ValueError(exc.message) from None
    return text


def _check_db_url(url: str | None) -> str | None:
    if url is not None and not url.startswith(("postgresql://", "postgresql+psycopg2://", "postgres://")):
        raise ValueError("metadata_db_url must be a PostgreSQL URL (postgresql://user:password@host:port/db)")
    return url


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccessMode(StrEnum):
    """MWAA's WebserverAccessMode: where the environment's web server listens."""

    PRIVATE_ONLY = "PRIVATE_ONLY"  # loopback only (the default)
    PUBLIC_ONLY = "PUBLIC_ONLY"  # all interfaces
    PUBLIC_AND_PRIVATE = "PUBLIC_AND_PRIVATE"  # all interfaces


class Executor(StrEnum):
    """Where tasks run: inside the scheduler (LocalExecutor) or on Celery workers fed by a broker."""

    local = "local"
    celery = "celery"


class LogLevel(StrEnum):
    CRITICAL = "CRITICAL"
    ERROR = "ERROR"
    WARNING = "WARNING"
    INFO = "INFO"
    DEBUG = "DEBUG"


class ModuleLogging(_Strict):
    enabled: bool = True
    log_level: LogLevel = LogLevel.INFO


class LoggingConfiguration(_Strict):
    """MWAA's five log modules; each level applies to the components that write those logs."""

    dag_processing: ModuleLogging = Field(default_factory=ModuleLogging)
    scheduler: ModuleLogging = Field(default_factory=ModuleLogging)
    webserver: ModuleLogging = Field(default_factory=ModuleLogging)
    worker: ModuleLogging = Field(default_factory=ModuleLogging)
    task: ModuleLogging = Field(default_factory=ModuleLogging)


class SourceBucket(_Strict):
    """Where DAGs, requirements, plugins and the startup script come from (MWAA's S3 fields)."""

    bucket: str
    dag_s3_path: str
    requirements_s3_path: str | None = None
    requirements_s3_object_version: str | None = None
    plugins_s3_path: str | None = None
    plugins_s3_object_version: str | None = None
    startup_script_s3_path: str | None = None
    startup_script_s3_object_version: str | None = None


_MAINTENANCE = re.compile(r"^(MON|TUE|WED|THU|FRI|SAT|SUN):([01]\d|2[0-3]):(00|30)$")


def _check_maintenance(value: str | None) -> str | None:
    if value is not None and not _MAINTENANCE.fullmatch(value):
        raise ValueError(f"weekly_maintenance_window_start {value!r} must look like TUE:03:30 (DAY:HH:00 or DAY:HH:30)")
    return value


class _Options(_Strict):
    """Fields shared by create and update; None means "not given"."""

    airflow_version: str | None = None
    requirements: str | None = None
    airflow_configuration_options: dict[str, str] | None = None
    environment_variables: dict[str, str] | None = None
    environment_class: EnvironmentClass | None = None
    tags: dict[str, str] | None = None
    min_workers: int | None = Field(default=None, ge=1, le=25)
    max_workers: int | None = Field(default=None, ge=1, le=25)
    schedulers: int | None = Field(default=None, ge=1, le=5)
    min_webservers: int | None = Field(default=None, ge=1, le=5)
    max_webservers: int | None = Field(default=None, ge=1, le=5)
    executor: Executor | None = None
    # tasks one Celery worker runs at once; the class's value when not given
    worker_concurrency: int | None = Field(default=None, ge=1, le=128)
    webserver_access_mode: AccessMode | None = None
    logging: LoggingConfiguration | None = None
    weekly_maintenance_window_start: str | None = None
    kms_key: str | None = None
    execution_role_arn: str | None = None
    network_configuration: dict[str, Any] | None = None
    # a folder or a plugins.zip on the control plane's machine
    plugins: str | None = None
    # the script's text (MWAA's startup script): run before each component starts
    startup_script: str | None = None
    # scheduled snapshots (Cloud Composer's feature): a cron expression and how many to keep
    snapshot_schedule: str | None = None
    snapshot_retention: int | None = Field(default=None, ge=1, le=100)

    @field_validator("airflow_version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        return None if value is None else check_version(value)

    @field_validator("airflow_configuration_options")
    @classmethod
    def _config(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else _check_config(value)

    @field_validator("environment_variables")
    @classmethod
    def _env(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else _check_env(value)

    _v_requirements = field_validator("requirements")(_check_requirements)
    _v_maintenance = field_validator("weekly_maintenance_window_start")(_check_maintenance)
    _v_startup = field_validator("startup_script")(_check_startup_script)
    _v_cron = field_validator("snapshot_schedule")(_check_cron)

    @field_validator("plugins")
    @classmethod
    def _plugins(cls, value: str | None) -> str | None:
        return None if value is None else _check_plugins(value)


class EnvironmentCreate(_Options):
    name: Name
    airflow_version: str = DEFAULT_AIRFLOW_VERSION
    airflow_configuration_options: dict[str, str] = Field(default_factory=dict)
    environment_variables: dict[str, str] = Field(default_factory=dict)
    environment_class: EnvironmentClass = EnvironmentClass.small
    tags: dict[str, str] = Field(default_factory=dict)
    dags: str | None = None
    source: SourceBucket | None = None
    git: GitDags | None = None
    metadata_db_url: str | None = None

    @field_validator("dags")
    @classmethod
    def _dags(cls, value: str | None) -> str | None:
        return None if value is None else _check_dags(value)

    _v_db = field_validator("metadata_db_url")(_check_db_url)

    @model_validator(mode="after")
    def _one_source(self) -> "EnvironmentCreate":
        if sum(x is not None for x in (self.dags, self.source, self.git)) != 1:
            raise ValueError("give one of dags (a local folder), source (a Hangar bucket) or git (a repository)")
        return self

    def to_spec(self) -> "Spec":
        given = self.model_dump(exclude={"name", "metadata_db_url"}, exclude_none=True)
        return Spec.model_validate({**given, "external_metadata_db": self.metadata_db_url is not None})


class EnvironmentUpdate(_Options):
    """Fields left out keep their current value."""

    dags: str | None = None
    source: SourceBucket | None = None
    git: GitDags | None = None
    # a move to an older Airflow is refused unless asked for, and Airflow's `db downgrade` supports it
    allow_downgrade: bool = False

    @field_validator("dags")
    @classmethod
    def _dags(cls, value: str | None) -> str | None:
        return None if value is None else _check_dags(value)

    @model_validator(mode="after")
    def _not_empty(self) -> "EnvironmentUpdate":
        if not self.model_fields_set - {"allow_downgrade"}:
            raise ValueError("an update must change at least one field")
        nullable = {"requirements", "plugins", "startup_script", "snapshot_schedule"}  # null removes them
        for name in self.model_fields_set - nullable - {"allow_downgrade"}:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null; leave it out to keep the current value")
        if sum(x is not None for x in (self.dags, self.source, self.git)) > 1:
            raise ValueError("give one of dags, source or git, not several")
        return self


class Spec(BaseModel):
    """The stored form of a revision (no secrets: the metadata DB URL is stored encrypted apart).

    Sizing left unset takes the class's defaults when the revision is made, so a
    stored revision always says exactly what it runs with."""

    dags: str | None = None  # a local folder, or None when `source` names a bucket or `git` a repository
    source: SourceBucket | None = None
    git: GitDags | None = None
    airflow_version: str
    requirements: str | None = None
    airflow_configuration_options: dict[str, str] = Field(default_factory=dict)
    environment_variables: dict[str, str] = Field(default_factory=dict)
    environment_class: EnvironmentClass = EnvironmentClass.small
    tags: dict[str, str] = Field(default_factory=dict)
    external_metadata_db: bool = False
    min_workers: int = 1
    max_workers: int | None = None
    schedulers: int | None = None
    min_webservers: int | None = None
    max_webservers: int | None = None
    executor: Executor = Executor.local
    worker_concurrency: int | None = None
    webserver_access_mode: AccessMode = AccessMode.PRIVATE_ONLY
    logging: LoggingConfiguration = Field(default_factory=LoggingConfiguration)
    weekly_maintenance_window_start: str | None = None
    kms_key: str | None = None
    execution_role_arn: str | None = None
    network_configuration: dict[str, Any] | None = None
    plugins: str | None = None
    # the plugins' content hash when the revision was made: a changed folder is a changed revision
    plugins_sha256: str | None = None
    startup_script: str | None = None
    snapshot_schedule: str | None = None
    snapshot_retention: int | None = None

    @model_validator(mode="after")
    def _sizing(self) -> "Spec":
        preset = PRESETS[self.environment_class]
        mw1 = self.environment_class.value.startswith("mw1.")
        if self.max_workers is None:
            self.max_workers = max(self.min_workers, min(10, preset.max_workers))
        if self.schedulers is None:
            self.schedulers = min(2 if mw1 else 1, preset.max_schedulers)
        if self.min_webservers is None:
            self.min_webservers = min(2 if mw1 else 1, preset.max_webservers)
        if self.max_webservers is None:
            self.max_webservers = max(self.min_webservers, min(2 if mw1 else 1, preset.max_webservers))
        if self.worker_concurrency is None:
            self.worker_concurrency = preset.worker_concurrency
        checks = [
            (self.min_workers <= self.max_workers, f"min_workers {self.min_workers} is above max_workers {self.max_workers}"),
            (self.max_workers <= preset.max_workers, f"{self.environment_class} allows at most {preset.max_workers} workers, not {self.max_workers}"),
            (self.schedulers <= preset.max_schedulers, f"{self.environment_class} allows at most {preset.max_schedulers} schedulers, not {self.schedulers}"),
            (self.min_webservers <= self.max_webservers, f"min_webservers {self.min_webservers} is above max_webservers {self.max_webservers}"),
            (self.max_webservers <= preset.max_webservers, f"{self.environment_class} allows at most {preset.max_webservers} web servers, not {self.max_webservers}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        return self

    def merged(self, update: EnvironmentUpdate) -> "Spec":
        changes: dict[str, Any] = {k: getattr(update, k) for k in update.model_fields_set - {"allow_downgrade"}}
        for given in ("dags", "source", "git"):  # one DAG source replaces another
            if changes.get(given) is not None:
                changes.update({other: None for other in ("dags", "source", "git") if other != given})
        if "environment_class" in changes:  # sizing follows the new class unless given
            for field in ("max_workers", "schedulers", "min_webservers", "max_webservers", "worker_concurrency"):
                changes.setdefault(field, None)
        base = self.model_dump(mode="json")
        return Spec.model_validate({**base, **{k: (v.model_dump(mode="json") if isinstance(v, BaseModel) else v)
                                               for k, v in changes.items()}})
