"""The environment form: its fields, and the conversions between a submitted form, the API's
request models and a stored spec.

A form is flat text; the spec has mappings (configuration, variables, tags: one `key=value` a
line), numbers, a bucket source and per-module log levels. Errors, whether from parsing the text
or from the request model's validators, are keyed by the form field they concern, so the page can
show each next to its field.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import ValidationError

from hangar.schemas.classes import EnvironmentClass
from hangar.schemas.spec import AccessMode, EnvironmentCreate, EnvironmentUpdate, Executor, LogLevel, Spec
from hangar.schemas.versions import DEFAULT_AIRFLOW_VERSION

LOG_MODULES = ("dag_processing", "scheduler", "webserver", "worker", "task")
SOURCE_FIELDS = ("bucket", "dag_s3_path", "requirements_s3_path", "plugins_s3_path", "startup_script_s3_path")
GIT_FIELDS = {"git_url": "url", "git_ref": "ref", "git_subdir": "subdir", "git_credential": "credential",
              "git_interval": "sync_interval"}
MAPPINGS = ("airflow_configuration_options", "environment_variables", "tags")
NUMBERS = ("min_workers", "max_workers", "schedulers", "worker_concurrency", "snapshot_retention")
TEXTS = ("airflow_version", "requirements", "plugins", "startup_script", "weekly_maintenance_window_start", "kms_key",
         "snapshot_schedule")
CHOICES = {"environment_class": [c.value for c in EnvironmentClass], "executor": [e.value for e in Executor],
           "webserver_access_mode": [m.value for m in AccessMode]}
LEVELS = [level.value for level in LogLevel]
# fields that an update may empty: an empty box removes them
NULLABLE = {"requirements", "plugins", "startup_script", "snapshot_schedule"}
FORM_LEVEL = "__form__"


@dataclass(frozen=True)
class Parsed:
    data: dict  # the request's fields, as the API's JSON would give them
    errors: dict[str, str]  # form field -> message


def _lines(text: str, *, field: str, errors: dict[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            errors[field] = f"line {number} ({line.strip()[:60]!r}) is not key=value"
            return found
        found[key.strip()] = value.strip()
    return found


def parse(form: Mapping[str, str], *, creating: bool) -> Parsed:
    """The request fields a form gives (every field, the empty ones as None)."""
    get = lambda key: (form.get(key) or "").strip()  # noqa: E731
    errors: dict[str, str] = {}
    data: dict = {}
    if creating:
        data["name"] = get("name")
    for key in TEXTS:
        data[key] = (form.get(key) or "").replace("\r\n", "\n") if key in ("requirements", "startup_script") else get(key)
        data[key] = data[key] if data[key].strip() else None
    for key in MAPPINGS:
        data[key] = _lines(form.get(key) or "", field=key, errors=errors)
    for key in NUMBERS:
        text = get(key)
        if not text:
            data[key] = None
        elif text.isdigit():
            data[key] = int(text)
        else:
            errors[key] = f"{text!r} is not a whole number"
    for key, allowed in CHOICES.items():
        value = get(key) or None
        if value is not None and value not in allowed:
            errors[key] = f"{value!r} is not one of {', '.join(allowed)}"
        data[key] = value
    data["logging"] = {module: {"log_level": get(f"log_{module}") or "INFO"} for module in LOG_MODULES}
    for module in LOG_MODULES:
        if data["logging"][module]["log_level"] not in LEVELS:
            errors[f"log_{module}"] = f"log level must be one of {', '.join(LEVELS)}"
    data["git"] = None
    if get("dags_kind") == "bucket":
        data["dags"], data["source"] = None, {k: get(k) for k in SOURCE_FIELDS if get(k)}
    elif get("dags_kind") == "git":
        data["dags"], data["source"] = None, None
        data["git"] = {field: get(key) for key, field in GIT_FIELDS.items() if get(key)}
    else:
        data["dags"], data["source"] = get("dags") or None, None
    return Parsed(data=data, errors=errors)


def field_of(loc: tuple) -> str:
    """The form field a validation error's location names."""
    parts = [str(p) for p in loc if p not in ("body",)]
    if not parts:
        return FORM_LEVEL
    if parts[0] == "source":
        return parts[1] if len(parts) > 1 and parts[1] in SOURCE_FIELDS else "bucket"
    if parts[0] == "git":
        return next((key for key, field in GIT_FIELDS.items() if len(parts) > 1 and parts[1] == field), "git_url")
    if parts[0] == "logging":
        return f"log_{parts[1]}" if len(parts) > 1 else FORM_LEVEL
    return parts[0]


def _model_errors(exc: ValidationError) -> dict[str, str]:
    found: dict[str, str] = {}
    for error in exc.errors():
        message = error.get("msg", "invalid").removeprefix("Value error, ")
        field = field_of(tuple(error.get("loc", ())))
        if field == FORM_LEVEL and "dags" in message:
            field = "dags"
        found.setdefault(field, message)
    return found


def create_request(form: Mapping[str, str]) -> tuple[EnvironmentCreate | None, dict[str, str]]:
    parsed = parse(form, creating=True)
    if parsed.errors:
        return None, parsed.errors
    given = {k: v for k, v in parsed.data.items() if v is not None and v != {}}
    try:
        return EnvironmentCreate.model_validate(given), {}
    except ValidationError as exc:
        return None, _model_errors(exc)


def update_request(form: Mapping[str, str], current: Spec) -> tuple[EnvironmentUpdate | None, dict[str, str]]:
    """Only the fields the form changes, so an unchanged form says so rather than restarting anything."""
    parsed = parse(form, creating=False)
    if parsed.errors:
        return None, parsed.errors
    before = current.model_dump(mode="json")
    changed: dict = {}
    for key, value in parsed.data.items():
        if key == "dags" and value is None and parsed.data.get("source") is None:
            continue
        if key in ("source", "git") and value is None:
            continue
        if value is None and key not in NULLABLE:
            continue
        old = before.get(key)
        if key == "logging":
            old = {m: {"log_level": (old or {}).get(m, {}).get("log_level", "INFO")} for m in LOG_MODULES}
        if key == "source" and old:
            old = {k: v for k, v in old.items() if v}
        if key == "git" and old and value:
            value = {**{k: v for k, v in old.items()}, **value, **({"sync_interval": int(value["sync_interval"])}
                                                                 if str(value.get("sync_interval", "")).isdigit() else {})}
        if value != old and not (key == "dags" and value and old and _same_folder(value, old)):
            changed[key] = value
    if "logging" in changed:
        changed["logging"] = {m: {"enabled": True, **v} for m, v in changed["logging"].items()}
    if not changed:
        return None, {FORM_LEVEL: "nothing in the form differs from the running specification"}
    try:
        return EnvironmentUpdate.model_validate(changed), {}
    except ValidationError as exc:
        return None, _model_errors(exc)


def _same_folder(a: str, b: str) -> bool:
    from pathlib import Path

    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def values_of(spec: Spec | None) -> dict[str, str]:
    """A spec as the form's text (a new environment's defaults when None)."""
    if spec is None:
        return {"airflow_version": DEFAULT_AIRFLOW_VERSION, "environment_class": "small", "executor": "local",
                "webserver_access_mode": "PRIVATE_ONLY", "dags_kind": "folder",
                **{f"log_{m}": "INFO" for m in LOG_MODULES}}
    dumped = spec.model_dump(mode="json")
    values: dict[str, str] = {}
    for key in TEXTS + NUMBERS + tuple(CHOICES):
        value = dumped.get(key)
        values[key] = "" if value is None else str(value)
    for key in MAPPINGS:
        values[key] = "\n".join(f"{k}={v}" for k, v in (dumped.get(key) or {}).items())
    for module in LOG_MODULES:
        values[f"log_{module}"] = ((dumped.get("logging") or {}).get(module) or {}).get("log_level", "INFO")
    source, git = dumped.get("source"), dumped.get("git")
    values["dags_kind"] = "bucket" if source else "git" if git else "folder"
    for key, field in GIT_FIELDS.items():
        values[key] = "" if not git or git.get(field) is None else str(git[field])
    values["dags"] = dumped.get("dags") or ""
    for key in SOURCE_FIELDS:
        values[key] = (source or {}).get(key) or ""
    return values


# a domain error's message names its field this way; the first word that matches places it
_FIELD_WORDS = (("already exists", "name"), ("credential", "git_credential"), ("git", "git_url"), ("plugins", "plugins"), ("requirements", "requirements"),
                ("startup", "startup_script"), ("s3://", "bucket"), ("bucket", "bucket"), ("dags", "dags"),
                ("celery", "executor"), ("broker", "executor"), ("executor", "executor"), ("worker", "max_workers"),
                ("airflow", "airflow_version"), ("kms", "kms_key"), ("key", "kms_key"), ("tag", "tags"),
                ("maintenance", "weekly_maintenance_window_start"), ("snapshot", "snapshot_schedule"),
                ("task processes", "max_workers"), ("config", "airflow_configuration_options"))


def field_for_message(message: str) -> str:
    lowered = message.lower()
    for word, field in _FIELD_WORDS:
        if word in lowered:
            return field
    return FORM_LEVEL
