"""Export an environment to another engine: values for the official Apache Airflow Helm chart.

Why: the same environment should run on Kubernetes when one machine is no longer enough,
without anyone translating a spec into chart values by hand. The values use the keys of
the chart `apache-airflow/airflow` (values.yaml of chart 1.18): `apiServer` for Airflow 3,
`webserver` for 2.x, `workers.keda` for Celery autoscaling on the chart's own KEDA query,
which divides queued + running tasks by `config.celery.worker_concurrency`.

Invariants:
- The export is rendered from the spec alone and never reads Hangar's secret store. Secrets
  are references: the values name Kubernetes secrets (`kubernetes_secrets`) that the user
  creates. Configuration options and environment variables that look like credentials
  (by name, or a URL with a password) become references to `<name>-env` as well.
- Keys Hangar owns (paths, ports, auth, executor) are never exported from the user's
  options; the chart renders its own.
- Sizing comes from `hangar_options`, so the class presets are not repeated here.
- Requirements need an image: a Dockerfile on top of apache/airflow:<version> that pins
  Airflow, tagged `<name>-airflow:<version>-hangar` in the values.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hangar.context import Context
from hangar.schemas.classes import PRESETS
from hangar.schemas.export import ExportPublic, KubernetesSecret
from hangar.schemas.spec import OWNED_CONFIG_KEYS, LogLevel, Spec
from hangar.schemas.versions import parse_version
from hangar.errors import ValidationFailed
from hangar.runtime.airflow_config import LOG_MODULES, EnvironmentLayout, component_env, hangar_options
from hangar.store import repository

HELM_VALUES = "helm-values"
FORMATS = (HELM_VALUES,)
IMAGE_TAG_SUFFIX = "-hangar"

# What Hangar renders that describes the environment rather than the machine it runs on
# (paths, ports, hosts and auth stay with the chart).
CARRIED_OPTIONS = (
    ("core", "parallelism"),
    ("core", "max_active_tasks_per_dag"),
    ("core", "max_active_runs_per_dag"),
    ("core", "default_pool_task_slot_count"),
    ("dag_processor", "parsing_processes"),
    ("dag_processor", "refresh_interval"),
    ("scheduler", "dag_dir_list_interval"),
    ("scheduler", "parsing_processes"),
)

# Airflow's own sensitive options (airflow.configuration's sensitive_config_values) that a user may set.
_SENSITIVE_OPTIONS = frozenset({
    "smtp.smtp_password", "secrets.backend_kwargs", "sentry.sentry_dsn", "celery.flower_basic_auth",
    "database.sql_alchemy_engine_args", "atlas.password", "elasticsearch.host", "opensearch.host",
})
_SENSITIVE_WORD = re.compile(r"password|passwd|secret|token|credential|private_key|api_key|access_key|_dsn$", re.I)
_URL_WITH_PASSWORD = re.compile(r"://[^/@\s:]*:[^/@\s]+@")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_EXECUTORS = {"local": "LocalExecutor", "celery": "CeleryExecutor"}
# hangar_options needs a layout and ports; the chart replaces every path and port it would name
_CHART_LAYOUT = EnvironmentLayout(root=Path("/opt/airflow"))
_NO_PORTS = {"web": 8080, "worker_logs": 8793, "trigger_logs": 8794}


def export_environment(
    ctx: Context, *, name: str, format: str, requirements_file: str = "requirements.txt"
) -> ExportPublic:
    if format not in FORMATS:
        raise ValidationFailed(f"export format {format!r} is not supported; use one of: {', '.join(FORMATS)}")
    revision, spec = _running_spec(ctx, name=name)
    export = render_export(spec, name=name, requirements_file=requirements_file)
    return export.model_copy(update={"revision": revision})


def helm_values(ctx: Context, *, name: str) -> dict:
    """The chart values for the environment's running revision (the latest when none runs)."""
    return render_helm_values(_running_spec(ctx, name=name)[1], name=name)


def _running_spec(ctx: Context, *, name: str) -> tuple[int, Spec]:
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        revision = env.running_revision or env.revision
        return revision, repository.get_spec(session, env.id, revision)


def render_export(spec: Spec, *, name: str, requirements_file: str = "requirements.txt") -> ExportPublic:
    if not _FILE_NAME.fullmatch(requirements_file):
        raise ValidationFailed(f"requirements_file {requirements_file!r} must be a plain file name like requirements.txt")
    return ExportPublic(
        format=HELM_VALUES,
        values=render_helm_values(spec, name=name),
        requirements=_requirements_text(spec),
        dockerfile=render_dockerfile(spec, requirements_file=requirements_file),
        secrets=kubernetes_secrets(spec, name=name),
        notes=_notes(spec),
    )


def render_helm_values(spec: Spec, *, name: str) -> dict:
    version = spec.airflow_version
    major = parse_version(version)[0]
    executor = executor_name(spec)
    values: dict[str, Any] = {"airflowVersion": version, "defaultAirflowTag": version}
    if _requirements_text(spec) is not None:
        values["images"] = {"airflow": {"repository": f"{name}-airflow", "tag": f"{version}{IMAGE_TAG_SUFFIX}"}}
    values["executor"] = executor
    values["fernetKeySecretName"] = f"{name}-fernet-key"
    if major >= 3:
        values["apiSecretKeySecretName"] = f"{name}-api-secret-key"
        values["jwtSecretName"] = f"{name}-jwt-secret"
    else:
        values["webserverSecretKeySecretName"] = f"{name}-webserver-secret-key"
    values["data"] = {"metadataSecretName": f"{name}-metadata"}
    # the metadata database is the user's PostgreSQL, named by the secret above
    values["postgresql"] = {"enabled": False}
    values["scheduler"] = {"replicas": spec.schedulers}
    values["apiServer" if major >= 3 else "webserver"] = {"replicas": spec.min_webservers}
    values["workers"] = {"replicas": spec.min_workers}
    if executor == "CeleryExecutor":
        values["workers"]["keda"] = {
            "enabled": True, "minReplicaCount": spec.min_workers, "maxReplicaCount": spec.max_workers,
        }
    plain, secret = _split_env(spec)
    values["env"] = [{"name": var, "value": value} for var, value in plain]
    if secret:
        values["secret"] = [{"envName": var, "secretName": f"{name}-env", "secretKey": var} for var in secret]
    values["config"] = _config(spec, executor=executor)
    return values


def executor_name(spec: Spec) -> str:
    """The chart's name for the spec's executor."""
    chosen = getattr(spec, "executor", "local")
    chosen = str(getattr(chosen, "value", chosen) or "local").lower()
    if chosen not in _EXECUTORS:
        raise ValidationFailed(f"executor {chosen!r} has no Helm chart equivalent; supported: {', '.join(_EXECUTORS)}")
    return _EXECUTORS[chosen]


def render_dockerfile(spec: Spec, *, requirements_file: str = "requirements.txt") -> str | None:
    """An image with the requirements on top of the official one; Airflow itself stays pinned."""
    if _requirements_text(spec) is None:
        return None
    version = spec.airflow_version
    return (
        f"FROM apache/airflow:{version}\n"
        f"COPY {requirements_file} /requirements.txt\n"
        f'RUN pip install --no-cache-dir "apache-airflow=={version}" -r /requirements.txt\n'
    )


def kubernetes_secrets(spec: Spec, *, name: str) -> list[KubernetesSecret]:
    major = parse_version(spec.airflow_version)[0]
    secrets = [KubernetesSecret(name=f"{name}-fernet-key", keys=["fernet-key"], purpose="[core] fernet_key")]
    if major >= 3:
        secrets.append(KubernetesSecret(name=f"{name}-api-secret-key", keys=["api-secret-key"], purpose="[api] secret_key"))
        secrets.append(KubernetesSecret(name=f"{name}-jwt-secret", keys=["jwt-secret"], purpose="[api_auth] jwt_secret"))
    else:
        secrets.append(KubernetesSecret(name=f"{name}-webserver-secret-key", keys=["webserver-secret-key"],
                                        purpose="[webserver] secret_key"))
    secrets.append(KubernetesSecret(name=f"{name}-metadata", keys=["connection"],
                                    purpose="the metadata database URL (postgresql://user:password@host:5432/db)"))
    sensitive = _split_env(spec)[1]
    if sensitive:
        secrets.append(KubernetesSecret(name=f"{name}-env", keys=sensitive,
                                        purpose="configuration options and environment variables that hold credentials"))
    return secrets


def _config(spec: Spec, *, executor: str) -> dict[str, dict[str, str]]:
    rendered = hangar_options(spec=spec, layout=_CHART_LAYOUT, ports=_NO_PORTS)
    config: dict[str, dict[str, str]] = {}
    for section, key in CARRIED_OPTIONS:
        if key in rendered.get(section, {}):
            config.setdefault(section, {})[key] = rendered[section][key]
    if executor == "CeleryExecutor":
        concurrency = spec.worker_concurrency or PRESETS[spec.environment_class].worker_concurrency
        config.setdefault("celery", {})["worker_concurrency"] = str(concurrency)
    for dotted, value in sorted(spec.airflow_configuration_options.items()):
        section, key = dotted.split(".", 1)
        if _owned(dotted) or _sensitive_option(dotted, value):
            continue
        config.setdefault(section, {})[key] = _chart_literal(value)
    # Hangar sets the level per component in the environment, which beats airflow.cfg
    config.setdefault("logging", {})["logging_level"] = logging_level(spec)
    return config


def logging_level(spec: Spec) -> str:
    """The most verbose level any component logs at: the chart has one level for all of them."""
    order = [level.value for level in reversed(LogLevel)]  # DEBUG first
    levels = [component_env(spec, component)["AIRFLOW__LOGGING__LOGGING_LEVEL"] for component in LOG_MODULES]
    return min(levels, key=order.index)


def _chart_literal(value: str) -> str:
    """The chart passes config values through `tpl` and writes airflow.cfg verbatim, which Airflow
    reads with %-interpolation: keep `{{` and `%` literal, as Hangar's own airflow.cfg does."""
    return value.replace("%", "%%").replace("{{", '{{ "{{" }}')


def _owned(dotted: str) -> bool:
    return any(key in OWNED_CONFIG_KEYS for key in (dotted, dotted.removesuffix("_cmd"), dotted.removesuffix("_secret")))


def _sensitive_option(dotted: str, value: str) -> bool:
    key = dotted.split(".", 1)[1]
    return dotted in _SENSITIVE_OPTIONS or bool(_SENSITIVE_WORD.search(key)) or bool(_URL_WITH_PASSWORD.search(value))


def _sensitive_env(var: str, value: str) -> bool:
    parts = var.split("__")
    if len(parts) >= 3 and parts[0] == "AIRFLOW":
        return _sensitive_option(f"{parts[1].lower()}.{parts[2].lower()}", value)
    # a connection URI usually carries its credentials
    return var.startswith("AIRFLOW_CONN_") or bool(_SENSITIVE_WORD.search(var)) or bool(_URL_WITH_PASSWORD.search(value))


def _split_env(spec: Spec) -> tuple[list[tuple[str, str]], list[str]]:
    """(plain name/value pairs, names that become secret references), sorted by name. Sensitive
    configuration options travel as their AIRFLOW__SECTION__KEY variables."""
    plain: list[tuple[str, str]] = []
    secret: list[str] = []
    for var, value in sorted(spec.environment_variables.items()):
        if _sensitive_env(var, value):
            secret.append(var)
        else:
            plain.append((var, value))
    for dotted, value in sorted(spec.airflow_configuration_options.items()):
        if not _owned(dotted) and _sensitive_option(dotted, value):
            section, key = dotted.split(".", 1)
            var = f"AIRFLOW__{section.upper()}__{key.upper()}"
            if var not in secret:
                secret.append(var)
    return plain, secret


def _requirements_text(spec: Spec) -> str | None:
    if not spec.requirements or not spec.requirements.strip():
        return None
    return spec.requirements if spec.requirements.endswith("\n") else spec.requirements + "\n"


def _notes(spec: Spec) -> list[str]:
    notes = ["DAGs are not in the values: enable dags.gitSync or dags.persistence, or bake them into the image"]
    if spec.plugins:
        notes.append(f"plugins ({spec.plugins}) are not in the values: copy them into the image under /opt/airflow/plugins")
    if spec.startup_script:
        notes.append("the startup script is not run by the chart: move what it does into the image or into env")
    if _requirements_text(spec) is not None:
        notes.append("build and push the image from the Dockerfile before installing the chart")
    return notes
