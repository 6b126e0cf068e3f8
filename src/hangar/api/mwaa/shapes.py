"""MWAA request and response shapes, and their mapping to Hangar's spec.

Field names, patterns and ranges follow botocore's model for mwaa 2020-07-01.
Unknown fields are refused (ValidationException), like every other bad input.
"""
from __future__ import annotations

import base64
import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from hangar.schemas.public import EnvironmentPublic

from hangar.schemas.spec import AccessMode, EnvironmentCreate, EnvironmentUpdate, LoggingConfiguration, LogLevel, ModuleLogging, SourceBucket
from hangar.errors import ValidationFailed

ACCOUNT = "000000000000"
REGION = "local"
ROLE_PATTERN = r"^arn:aws(-[a-z]+)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$"
BUCKET_PATTERN = r"^arn:aws(-[a-z]+)?:s3:::[a-z0-9.\-]+$"
KMS_PATTERN = (r"^((((arn:aws(-[a-z]+)?:kms:[a-z]{2}-[a-z]+-\d:\d+:)?key\/)?[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-"
               r"[a-f0-9]{4}-[a-f0-9]{12})|((arn:aws(-[a-z]+)?:kms:[a-z]{2}-[a-z]+-\d:\d+:)?alias/.+))$")
ARN_PATTERN = re.compile(r"^arn:aws(-[a-z]+)?:airflow:[a-z0-9\-]+:\d{12}:environment/(?P<name>[a-zA-Z][0-9a-zA-Z\-_]*)$")
_CONFIG_KEY = re.compile(r"^[a-z]+([a-z0-9._]*[a-z0-9_]+)?$")
_TAG_KEY = re.compile(r"^(?!aws:)[\w\s.:/=+\-@]*$")

def _key_in_bucket(path: str) -> str:
    """An S3 key relative to the bucket: no leading slash, no `.` or `..` segment, no empty one
    (MWAA refuses such a path at the request; Hangar would only fail later, reading the bucket)."""
    parts = path.rstrip("/").split("/")
    if path.startswith("/") or "\\" in path or "\x00" in path or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{path!r} is not a path in the bucket: give a key like dags or dags/requirements.txt, "
                         "with no leading '/' and no '.' or '..' part")
    return path


RelativePath = Annotated[str, StringConstraints(min_length=1, max_length=1024), AfterValidator(_key_in_bucket)]
ObjectVersion = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModuleLoggingInput(_Shape):
    Enabled: bool
    LogLevel: LogLevel


class LoggingInput(_Shape):
    DagProcessingLogs: ModuleLoggingInput | None = None
    SchedulerLogs: ModuleLoggingInput | None = None
    WebserverLogs: ModuleLoggingInput | None = None
    WorkerLogs: ModuleLoggingInput | None = None
    TaskLogs: ModuleLoggingInput | None = None


class NetworkInput(_Shape):
    SubnetIds: list[str] | None = Field(default=None, min_length=2, max_length=2)
    SecurityGroupIds: list[str] | None = Field(default=None, min_length=1, max_length=5)


def check_tags(tags: dict[str, str] | None) -> dict[str, str] | None:
    if tags is None:
        return None
    if not 1 <= len(tags) <= 50:
        raise ValueError(f"Tags must hold 1 to 50 tags, not {len(tags)}")
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or not _TAG_KEY.match(key):
            raise ValueError(f"tag key {key[:140]!r} must be 1-128 characters, not start with aws:, and use letters, digits, spaces or _.:/=+-@")
        if len(value) > 256:
            raise ValueError(f"the value of tag {key!r} is longer than 256 characters")
    return tags


def check_config(options: dict[str, str] | None) -> dict[str, str] | None:
    for key, value in (options or {}).items():
        if len(key) > 64 or not _CONFIG_KEY.match(key):
            raise ValueError(f"AirflowConfigurationOptions key {key!r} does not match [a-z]+([a-z0-9._]*[a-z0-9_]+)? (at most 64 characters)")
        if not value or len(value) > 65536 or not all(" " <= ch <= "~" for ch in value):
            raise ValueError(f"AirflowConfigurationOptions value for {key!r} must be 1-65536 printable ASCII characters")
    return options


class _EnvironmentFields(_Shape):
    ExecutionRoleArn: Annotated[str, StringConstraints(max_length=1224, pattern=ROLE_PATTERN)] | None = None
    SourceBucketArn: Annotated[str, StringConstraints(max_length=1224, pattern=BUCKET_PATTERN)] | None = None
    DagS3Path: RelativePath | None = None
    PluginsS3Path: RelativePath | None = None
    PluginsS3ObjectVersion: ObjectVersion | None = None
    RequirementsS3Path: RelativePath | None = None
    RequirementsS3ObjectVersion: ObjectVersion | None = None
    StartupScriptS3Path: RelativePath | None = None
    StartupScriptS3ObjectVersion: ObjectVersion | None = None
    AirflowConfigurationOptions: dict[str, str] | None = None
    EnvironmentClass: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = None
    MaxWorkers: int | None = Field(default=None, ge=1)
    MinWorkers: int | None = Field(default=None, ge=1)
    Schedulers: int | None = Field(default=None, le=5)
    MinWebservers: int | None = Field(default=None, ge=1)
    MaxWebservers: int | None = Field(default=None, ge=1)
    AirflowVersion: Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[0-9a-z.]+$")] | None = None
    LoggingConfiguration: LoggingInput | None = None
    WeeklyMaintenanceWindowStart: Annotated[str, StringConstraints(min_length=1, max_length=9)] | None = None
    WebserverAccessMode: AccessMode | None = None

    _v_config = field_validator("AirflowConfigurationOptions")(check_config)


class CreateEnvironmentInput(_EnvironmentFields):
    ExecutionRoleArn: Annotated[str, StringConstraints(max_length=1224, pattern=ROLE_PATTERN)]
    SourceBucketArn: Annotated[str, StringConstraints(max_length=1224, pattern=BUCKET_PATTERN)]
    DagS3Path: RelativePath
    NetworkConfiguration: NetworkInput
    KmsKey: Annotated[str, StringConstraints(max_length=1224, pattern=KMS_PATTERN)] | None = None
    Tags: dict[str, str] | None = None
    EndpointManagement: Annotated[str, StringConstraints(pattern=r"^(CUSTOMER|SERVICE)$")] | None = None

    _v_tags = field_validator("Tags")(check_tags)


class UpdateEnvironmentInput(_EnvironmentFields):
    NetworkConfiguration: NetworkInput | None = None
    WorkerReplacementStrategy: Annotated[str, StringConstraints(pattern=r"^(FORCED|GRACEFUL)$")] | None = None


class TagResourceInput(_Shape):
    Tags: dict[str, str]

    _v_tags = field_validator("Tags")(check_tags)


class InvokeRestApiInput(_Shape):
    Path: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    Method: Annotated[str, StringConstraints(pattern=r"^(GET|PUT|POST|PATCH|DELETE)$")]
    QueryParameters: dict[str, Any] | None = None
    Body: dict[str, Any] | None = None


# --- to Hangar ---

_LOG_MODULES = {"DagProcessingLogs": "dag_processing", "SchedulerLogs": "scheduler", "WebserverLogs": "webserver",
                "WorkerLogs": "worker", "TaskLogs": "task"}


def bucket_name(arn: str) -> str:
    return arn.rsplit(":", 1)[1]


def _logging(given: LoggingInput | None, current: LoggingConfiguration | None = None) -> LoggingConfiguration | None:
    if given is None:
        return None
    result = (current or LoggingConfiguration()).model_copy(deep=True)
    for mwaa_name, ours in _LOG_MODULES.items():
        module = getattr(given, mwaa_name)
        if module is not None:
            setattr(result, ours, ModuleLogging(enabled=module.Enabled, log_level=module.LogLevel))
    return result


def _common(body: _EnvironmentFields) -> dict[str, Any]:
    fields = {
        "airflow_version": body.AirflowVersion,
        "airflow_configuration_options": body.AirflowConfigurationOptions,
        "environment_class": body.EnvironmentClass,
        "min_workers": body.MinWorkers,
        "max_workers": body.MaxWorkers,
        "schedulers": body.Schedulers,
        "min_webservers": body.MinWebservers,
        "max_webservers": body.MaxWebservers,
        "webserver_access_mode": body.WebserverAccessMode,
        "logging": _logging(body.LoggingConfiguration),
        "weekly_maintenance_window_start": body.WeeklyMaintenanceWindowStart,
        "execution_role_arn": body.ExecutionRoleArn,
    }
    return {k: v for k, v in fields.items() if v is not None}


def _source(body: _EnvironmentFields, current: SourceBucket | None = None) -> SourceBucket | None:
    paths = ("DagS3Path", "RequirementsS3Path", "RequirementsS3ObjectVersion", "PluginsS3Path",
             "PluginsS3ObjectVersion", "StartupScriptS3Path", "StartupScriptS3ObjectVersion")
    if body.SourceBucketArn is None and not any(getattr(body, p) is not None for p in paths):
        return None
    base = current.model_dump() if current else {}
    if body.SourceBucketArn is not None:
        base["bucket"] = bucket_name(body.SourceBucketArn)
    for path in paths:
        value = getattr(body, path)
        if value is not None:
            base[re.sub(r"(?<!^)(?=[A-Z])", "_", path).lower()] = value
    if "bucket" not in base or "dag_s3_path" not in base:
        raise ValidationFailed("this environment has no source bucket: give SourceBucketArn and DagS3Path")
    return SourceBucket.model_validate(base)


def create_request(name: str, body: CreateEnvironmentInput) -> EnvironmentCreate:
    fields = _common(body)
    fields.update(name=name, source=_source(body), tags=body.Tags or {}, kms_key=body.KmsKey,
                  network_configuration=body.NetworkConfiguration.model_dump(exclude_none=True))
    return EnvironmentCreate.model_validate({k: v for k, v in fields.items() if v is not None})


def update_request(body: UpdateEnvironmentInput, current: EnvironmentPublic) -> EnvironmentUpdate:
    fields = _common(body)
    if body.LoggingConfiguration is not None:
        fields["logging"] = _logging(body.LoggingConfiguration, current.spec.logging)
    source = _source(body, current.spec.source)
    if source is not None:
        fields["source"] = source
    if body.NetworkConfiguration is not None:
        fields["network_configuration"] = body.NetworkConfiguration.model_dump(exclude_none=True)
    if not fields:
        raise ValidationFailed("UpdateEnvironment needs at least one field to change")
    return EnvironmentUpdate.model_validate(fields)


# --- to MWAA ---

def arn(name: str) -> str:
    return f"arn:aws:airflow:{REGION}:{ACCOUNT}:environment/{name}"


def name_from_arn(value: str) -> str:
    match = ARN_PATTERN.match(value)
    if not match:
        raise ValidationFailed(f"{value!r} is not an environment ARN like {arn('NAME')}")
    return match["name"]


def hostname(webserver_url: str | None) -> str | None:
    return webserver_url.split("://", 1)[1] if webserver_url else None


def environment(env: EnvironmentPublic) -> dict[str, Any]:
    spec = env.spec
    out: dict[str, Any] = {
        "Name": env.name,
        "Status": env.status,
        "Arn": arn(env.name),
        "CreatedAt": env.created_at.timestamp(),
        "AirflowVersion": spec.airflow_version,
        "EnvironmentClass": spec.environment_class.value,
        "MinWorkers": spec.min_workers,
        "MaxWorkers": spec.max_workers,
        "Schedulers": spec.schedulers,
        "MinWebservers": spec.min_webservers,
        "MaxWebservers": spec.max_webservers,
        "WebserverAccessMode": spec.webserver_access_mode.value,
        "EndpointManagement": "SERVICE",
        "AirflowConfigurationOptions": spec.airflow_configuration_options,
        "Tags": spec.tags,
        "ServiceRoleArn": f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/airflow.amazonaws.com/AWSServiceRoleForAmazonMWAA",
        "LoggingConfiguration": {
            mwaa_name: {"Enabled": getattr(spec.logging, ours).enabled, "LogLevel": getattr(spec.logging, ours).log_level.value}
            for mwaa_name, ours in _LOG_MODULES.items()
        },
    }
    optional = {
        "WebserverUrl": hostname(env.webserver_url),
        "ExecutionRoleArn": spec.execution_role_arn,
        "KmsKey": spec.kms_key,
        "WeeklyMaintenanceWindowStart": spec.weekly_maintenance_window_start,
        "NetworkConfiguration": spec.network_configuration,
    }
    if spec.source is not None:
        src = spec.source
        optional.update({
            "SourceBucketArn": f"arn:aws:s3:::{src.bucket}", "DagS3Path": src.dag_s3_path,
            "RequirementsS3Path": src.requirements_s3_path, "RequirementsS3ObjectVersion": src.requirements_s3_object_version,
            "PluginsS3Path": src.plugins_s3_path, "PluginsS3ObjectVersion": src.plugins_s3_object_version,
            "StartupScriptS3Path": src.startup_script_s3_path,
            "StartupScriptS3ObjectVersion": src.startup_script_s3_object_version,
        })
    out.update({k: v for k, v in optional.items() if v is not None})
    if env.last_update is not None:
        last: dict[str, Any] = {"Status": env.last_update.status, "CreatedAt": env.last_update.created_at.timestamp(),
                                "Source": "HANGAR"}
        if env.last_update.error is not None:
            last["Error"] = {"ErrorCode": env.last_update.error.code,
                             "ErrorMessage": env.last_update.error.message[:1024] or env.last_update.error.code}
        out["LastUpdate"] = last
    return out


def encode_token(after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode()


def decode_token(token: str) -> str:
    try:
        after = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
    except (ValueError, KeyError, TypeError):
        after = None
    if not isinstance(after, str):
        raise ValidationFailed("NextToken is not a token this API returned")
    return after
