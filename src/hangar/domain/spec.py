"""The environment spec: one pydantic model family (Create / Update / Public).

A spec is what the user asked for. Every create or update stores it as a new
immutable revision (hangar.store). Validation here is the only place user input
is judged; errors name the field or key that is wrong.
"""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NewType

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hangar.domain.classes import EnvironmentClass
from hangar.domain.requirements import check_requirements
from hangar.errors import ValidationFailed

EnvironmentId = NewType("EnvironmentId", str)

NAME_PATTERN = r"^[a-zA-Z][0-9a-zA-Z\-_]*$"
DEFAULT_AIRFLOW_VERSION = "3.3.2"
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
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
    "core.auth_manager", "api.auth_backends",
})
OWNED_ENV_VARS = frozenset({"AIRFLOW_HOME", "AIRFLOW_CONFIG", "PYTHONPATH", "PATH", "VIRTUAL_ENV"})

Name = Annotated[str, Field(min_length=1, max_length=80, pattern=NAME_PATTERN)]


def parse_version(version: str) -> tuple[int, int, int]:
    match = _VERSION.fullmatch(version)
    if not match:
        raise ValueError(f"airflow_version {version!r} is not a version like 3.3.2")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def _check_version(version: str) -> str:
    major, minor, _ = parse_version(version)
    if not (major == 3 or (major == 2 and minor >= 11)):
        raise ValueError(f"airflow_version {version!r} is not supported: use 2.11.x or 3.x")
    return version


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


class EnvironmentCreate(_Strict):
    name: Name
    dags: str
    airflow_version: str = DEFAULT_AIRFLOW_VERSION
    requirements: str | None = None
    airflow_configuration_options: dict[str, str] = Field(default_factory=dict)
    environment_variables: dict[str, str] = Field(default_factory=dict)
    environment_class: EnvironmentClass = EnvironmentClass.small
    tags: dict[str, str] = Field(default_factory=dict)
    metadata_db_url: str | None = None

    _v_version = field_validator("airflow_version")(_check_version)
    _v_config = field_validator("airflow_configuration_options")(_check_config)
    _v_env = field_validator("environment_variables")(_check_env)
    _v_dags = field_validator("dags")(_check_dags)
    _v_requirements = field_validator("requirements")(_check_requirements)
    _v_db = field_validator("metadata_db_url")(_check_db_url)


class EnvironmentUpdate(_Strict):
    """Fields left out keep their current value."""

    dags: str | None = None
    airflow_version: str | None = None
    requirements: str | None = None
    airflow_configuration_options: dict[str, str] | None = None
    environment_variables: dict[str, str] | None = None
    environment_class: EnvironmentClass | None = None
    tags: dict[str, str] | None = None

    @field_validator("airflow_version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        return None if value is None else _check_version(value)

    @field_validator("airflow_configuration_options")
    @classmethod
    def _config(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else _check_config(value)

    @field_validator("environment_variables")
    @classmethod
    def _env(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else _check_env(value)

    @field_validator("dags")
    @classmethod
    def _dags(cls, value: str | None) -> str | None:
        return None if value is None else _check_dags(value)

    _v_requirements = field_validator("requirements")(_check_requirements)

    @model_validator(mode="after")
    def _not_empty(self) -> "EnvironmentUpdate":
        if not self.model_fields_set:
            raise ValueError("an update must change at least one field")
        for name in self.model_fields_set - {"requirements"}:  # requirements: null removes them
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null; leave it out to keep the current value")
        return self


class Spec(BaseModel):
    """The stored form of a revision (no secrets: the metadata DB URL is stored encrypted apart)."""

    dags: str
    airflow_version: str
    requirements: str | None = None
    airflow_configuration_options: dict[str, str] = Field(default_factory=dict)
    environment_variables: dict[str, str] = Field(default_factory=dict)
    environment_class: EnvironmentClass = EnvironmentClass.small
    tags: dict[str, str] = Field(default_factory=dict)
    external_metadata_db: bool = False

    def merged(self, update: EnvironmentUpdate) -> "Spec":
        changes: dict[str, Any] = {k: getattr(update, k) for k in update.model_fields_set}
        return self.model_copy(update=changes)


class ErrorInfo(BaseModel):
    code: str
    message: str


class LastUpdate(BaseModel):
    status: str  # SUCCESS, PENDING or FAILED, as MWAA reports it
    created_at: datetime
    error: ErrorInfo | None = None
    revision: int


class ComponentPublic(BaseModel):
    name: str
    state: str
    pid: int | None = None
    port: int | None = None
    restarts: int = 0
    reason: str | None = None


class EnvironmentPublic(BaseModel):
    name: str
    status: str
    status_reason: str | None = None
    airflow_version: str
    webserver_url: str | None
    created_at: datetime
    last_update: LastUpdate | None
    revision: int
    running_revision: int | None
    last_good_revision: int | None
    spec: Spec
    components: list[ComponentPublic] = Field(default_factory=list)


class EventPublic(BaseModel):
    at: datetime
    status: str
    previous: str | None
    reason: str


class TokenPublic(BaseModel):
    token: str
    expires_at: datetime
    webserver_url: str | None
    role: str
