"""Export to the official Apache Airflow Helm chart: the values for a few specs, secrets only as
references, the image for requirements, Airflow 2.11 against 3.x keys; the route and the CLI.

Key names are those of the chart's values.yaml (chart 1.18: `apiServer`, `apiSecretKeySecretName`,
`jwtSecretName`, `workers.keda`, the `env` and `secret` list formats)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hangar.api import audit
from hangar.api import errors as api_errors
from hangar.api.routes import export as export_routes
from hangar.cli import export as export_cli
from hangar.context import Context
from hangar.domain import environments
from hangar.schemas.classes import PRESETS, EnvironmentClass
from hangar.domain.export import (
    export_environment, helm_values, kubernetes_secrets, logging_level, render_dockerfile, render_export,
    render_helm_values,
)
from hangar.schemas.spec import OWNED_CONFIG_KEYS, EnvironmentCreate, EnvironmentUpdate, Spec
from hangar.errors import EnvironmentNotFound, ValidationFailed
from hangar.store import repository

ADMIN_KEY = "hgr_test-admin-key"

# top-level keys of the chart's values.yaml that the export may use
CHART_TOP_LEVEL = {
    "airflowVersion", "defaultAirflowTag", "images", "executor", "fernetKeySecretName", "apiSecretKeySecretName",
    "jwtSecretName", "webserverSecretKeySecretName", "data", "postgresql", "scheduler", "apiServer", "webserver",
    "workers", "env", "secret", "config",
}


def spec(**fields) -> Spec:
    return Spec.model_validate({"airflow_version": "3.3.2", **fields})


def test_default_environment_runs_local_executor_with_the_class_sizing():
    values = render_helm_values(spec(), name="demo")
    assert set(values) <= CHART_TOP_LEVEL
    assert values["airflowVersion"] == values["defaultAirflowTag"] == "3.3.2"
    assert values["executor"] == "LocalExecutor"
    assert values["scheduler"] == {"replicas": 1}
    assert values["apiServer"] == {"replicas": 1}
    assert values["workers"] == {"replicas": 1}
    assert "keda" not in values["workers"] and "images" not in values
    preset = PRESETS[EnvironmentClass.small]
    assert values["config"]["core"] == {
        "parallelism": str(preset.parallelism), "max_active_tasks_per_dag": str(preset.max_active_tasks_per_dag),
        "max_active_runs_per_dag": str(preset.max_active_runs_per_dag),
        "default_pool_task_slot_count": str(preset.default_pool_slots),
    }
    assert values["config"]["dag_processor"]["parsing_processes"] == str(preset.parsing_processes)
    assert values["config"]["logging"] == {"logging_level": "INFO"}
    assert values["env"] == []
    assert "secret" not in values
    # every config value is a string, as the chart writes them into airflow.cfg
    assert all(isinstance(v, str) for section in values["config"].values() for v in section.values())


def test_sizing_follows_the_spec():
    values = render_helm_values(spec(environment_class="mw1.medium", schedulers=2, min_webservers=2, max_webservers=3,
                                     min_workers=2, max_workers=6), name="big")
    assert values["scheduler"] == {"replicas": 2}
    assert values["apiServer"] == {"replicas": 2}
    assert values["workers"]["replicas"] == 2
    # mw1 classes: tasks per worker x max_workers slots, shared by the schedulers, as Hangar renders it
    assert values["config"]["core"]["parallelism"] == str(10 * 6 // 2)


def test_celery_maps_to_keda_on_the_charts_own_query():
    class CelerySpec(Spec):
        executor: str = "celery"

    celery = CelerySpec.model_validate({"airflow_version": "3.3.2", "environment_class": "mw1.large",
                                        "min_workers": 2, "max_workers": 8})
    values = render_helm_values(celery, name="scale")
    assert values["executor"] == "CeleryExecutor"
    assert values["workers"] == {"replicas": 2, "keda": {"enabled": True, "minReplicaCount": 2, "maxReplicaCount": 8}}
    assert "query" not in values["workers"]["keda"]  # the chart's query divides by worker_concurrency
    assert values["config"]["celery"] == {"worker_concurrency": str(PRESETS[EnvironmentClass.mw1_large].worker_concurrency)}


def test_an_unknown_executor_is_refused():
    class OtherSpec(Spec):
        executor: str = "dask"

    with pytest.raises(ValidationFailed, match="executor 'dask'"):
        render_helm_values(OtherSpec(airflow_version="3.3.2"), name="x")


def test_config_overrides_are_nested_and_owned_keys_never_appear():
    values = render_helm_values(spec(airflow_configuration_options={
        "core.default_timezone": "Europe/Paris", "core.parallelism": "99", "scheduler.min_file_process_interval": "60",
        "logging.log_format": "[%(asctime)s] %(message)s", "logging.log_filename_template": "{{ ti.dag_id }}.log",
    }), name="cfg")
    config = values["config"]
    assert config["core"]["default_timezone"] == "Europe/Paris"
    assert config["core"]["parallelism"] == "99"  # the user's override wins, as in airflow.cfg
    assert config["scheduler"] == {"min_file_process_interval": "60"}
    # the chart writes airflow.cfg verbatim after `tpl`: % and {{ stay literal
    assert config["logging"]["log_format"] == "[%%(asctime)s] %%(message)s"
    assert config["logging"]["log_filename_template"] == '{{ "{{" }} ti.dag_id }}.log'
    exported = {f"{section}.{key}" for section, keys in config.items() for key in keys}
    assert not exported & OWNED_CONFIG_KEYS
    assert not {"core.dags_folder", "core.executor", "api.port", "api.base_url", "logging.base_log_folder",
                "core.simple_auth_manager_passwords_file", "core.execution_api_server_url"} & exported


def test_owned_keys_in_a_stored_spec_are_still_left_out():
    # validation refuses them on create; a stored spec is not re-judged, so the export filters too
    stored = Spec.model_construct(**{**spec().__dict__, "airflow_configuration_options": {
        "core.fernet_key": "x", "database.sql_alchemy_conn_cmd": "cat /x", "core.load_examples": "True"}})
    config = render_helm_values(stored, name="owned")["config"]
    assert "fernet_key" not in config["core"] and "database" not in config
    assert config["core"]["load_examples"] == "True"


def test_environment_variables_use_the_charts_env_list():
    values = render_helm_values(spec(environment_variables={"B_VAR": "2", "A_VAR": "1"}), name="env")
    assert values["env"] == [{"name": "A_VAR", "value": "1"}, {"name": "B_VAR", "value": "2"}]


def test_credentials_in_options_and_variables_become_secret_references():
    values = render_helm_values(spec(
        airflow_configuration_options={"smtp.smtp_password": "hunter2", "smtp.smtp_host": "mail",
                                       "secrets.backend_kwargs": '{"token": "t0k"}'},
        environment_variables={"AIRFLOW_CONN_WAREHOUSE": "postgres://u:pw@db/w", "API_TOKEN": "abc123",
                               "SOME_URL": "https://bob:s3cr3t@example.com/x", "REGION": "eu"},
    ), name="sec")
    dumped = json.dumps(values)
    for secret in ("hunter2", "t0k", "pw@db", "abc123", "s3cr3t"):
        assert secret not in dumped
    assert values["env"] == [{"name": "REGION", "value": "eu"}]
    assert values["config"]["smtp"] == {"smtp_host": "mail"}
    assert values["secret"] == [
        {"envName": var, "secretName": "sec-env", "secretKey": var}
        for var in ("AIRFLOW_CONN_WAREHOUSE", "API_TOKEN", "SOME_URL", "AIRFLOW__SECRETS__BACKEND_KWARGS",
                    "AIRFLOW__SMTP__SMTP_PASSWORD")
    ]
    env_secret = [s for s in kubernetes_secrets(spec(environment_variables={"API_TOKEN": "x"}), name="sec")
                  if s.name == "sec-env"]
    assert env_secret[0].keys == ["API_TOKEN"]


def test_airflow_3_and_2_11_use_their_own_keys():
    three = render_helm_values(spec(airflow_version="3.3.2", min_webservers=2, max_webservers=2), name="a3")
    assert three["apiServer"] == {"replicas": 2} and "webserver" not in three
    assert three["apiSecretKeySecretName"] == "a3-api-secret-key"
    assert three["jwtSecretName"] == "a3-jwt-secret"
    assert "webserverSecretKeySecretName" not in three
    assert "parsing_processes" in three["config"]["dag_processor"]

    two = render_helm_values(spec(airflow_version="2.11.0", min_webservers=2, max_webservers=2), name="a2")
    assert two["webserver"] == {"replicas": 2} and "apiServer" not in two
    assert two["webserverSecretKeySecretName"] == "a2-webserver-secret-key"
    assert "apiSecretKeySecretName" not in two and "jwtSecretName" not in two
    assert "dag_processor" not in two["config"]
    assert two["config"]["scheduler"] == {"dag_dir_list_interval": "5", "parsing_processes": "1"}
    assert [s.name for s in kubernetes_secrets(spec(airflow_version="2.11.0"), name="a2")] == [
        "a2-fernet-key", "a2-webserver-secret-key", "a2-metadata"]


def test_secret_references_name_the_secrets_the_user_creates():
    values = render_helm_values(spec(), name="demo")
    assert values["fernetKeySecretName"] == "demo-fernet-key"
    assert values["data"] == {"metadataSecretName": "demo-metadata"}
    assert values["postgresql"] == {"enabled": False}
    secrets = {s.name: s.keys for s in kubernetes_secrets(spec(), name="demo")}
    # the keys the chart reads from each secret
    assert secrets == {"demo-fernet-key": ["fernet-key"], "demo-api-secret-key": ["api-secret-key"],
                       "demo-jwt-secret": ["jwt-secret"], "demo-metadata": ["connection"]}


def test_logging_takes_the_most_verbose_enabled_level():
    quiet = {"log_level": "ERROR"}
    assert logging_level(spec(logging={m: quiet for m in ("dag_processing", "scheduler", "webserver", "worker", "task")})) == "ERROR"
    assert logging_level(spec(logging={"task": {"log_level": "DEBUG"}, "scheduler": quiet})) == "DEBUG"
    off = {"enabled": False, "log_level": "DEBUG"}
    assert logging_level(spec(logging={m: off for m in ("dag_processing", "scheduler", "webserver", "worker", "task")})) == "CRITICAL"
    assert render_helm_values(spec(logging={"worker": {"log_level": "WARNING"}}), name="l")["config"]["logging"] == {
        "logging_level": "INFO"}


def test_requirements_produce_an_image_with_airflow_pinned():
    with_reqs = spec(airflow_version="3.3.2", requirements="pandas==2.2.3\nrequests>=2")
    values = render_helm_values(with_reqs, name="deps")
    assert values["images"] == {"airflow": {"repository": "deps-airflow", "tag": "3.3.2-hangar"}}
    assert values["defaultAirflowTag"] == "3.3.2"
    dockerfile = render_dockerfile(with_reqs, requirements_file="values.yaml.requirements.txt")
    assert dockerfile.splitlines() == [
        "FROM apache/airflow:3.3.2",
        "COPY values.yaml.requirements.txt /requirements.txt",
        'RUN pip install --no-cache-dir "apache-airflow==3.3.2" -r /requirements.txt',
    ]
    export = render_export(with_reqs, name="deps")
    assert export.requirements == "pandas==2.2.3\nrequests>=2\n"
    assert render_dockerfile(spec(), requirements_file="r.txt") is None
    assert render_export(spec(requirements="  \n"), name="x").dockerfile is None
    with pytest.raises(ValidationFailed, match="plain file name"):
        render_export(with_reqs, name="deps", requirements_file="../etc/passwd")


def test_notes_say_what_the_values_cannot_carry(tmp_path: Path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    notes = render_export(spec(plugins=str(plugins), startup_script="echo hi"), name="n").notes
    assert any("dags.gitSync" in note for note in notes)
    assert any("plugins" in note for note in notes)
    assert any("startup script" in note for note in notes)


def test_values_survive_a_yaml_round_trip():
    values = render_helm_values(spec(airflow_configuration_options={"core.default_timezone": "utc"},
                                     environment_variables={"ON": "yes", "N": "1"}), name="rt")
    assert yaml.safe_load(yaml.safe_dump(values, sort_keys=False)) == values


# -- from the store: the running revision, never the secret store -----------------------------------

def _create(ctx: Context, tmp_path: Path, name: str, **fields) -> str:
    dags = tmp_path / "dags"
    dags.mkdir(exist_ok=True)
    environments.create_environment(ctx, request=EnvironmentCreate(name=name, dags=str(dags), **fields))
    with ctx.store.session() as session:
        return repository.get_live(session, name).id


def test_the_export_holds_none_of_the_environments_secrets(ctx: Context, tmp_path: Path):
    db_url = "postgresql://hangar:sup3r-s3cret@db.internal:5432/airflow"
    env_id = _create(ctx, tmp_path, "prod", metadata_db_url=db_url, requirements="pandas==2.2.3",
                     environment_variables={"DB_PASSWORD": "pa55word"})
    with ctx.store.session() as session:
        secrets = repository.get_secrets(session, ctx.envelope, env_id=env_id)
    assert {"fernet_key", "jwt_secret", "secret_key", "metadata_db_url"} <= set(secrets)
    export = export_environment(ctx, name="prod", format="helm-values")
    dumped = export.model_dump_json()
    for value in [*secrets.values(), "sup3r-s3cret", "pa55word"]:
        assert value not in dumped
    assert export.values["fernetKeySecretName"] == "prod-fernet-key"
    assert export.values["data"]["metadataSecretName"] == "prod-metadata"
    assert export.values["secret"] == [{"envName": "DB_PASSWORD", "secretName": "prod-env", "secretKey": "DB_PASSWORD"}]
    assert export.dockerfile is not None and export.revision == 1


def test_the_running_revision_is_exported_not_a_pending_one(ctx: Context, tmp_path: Path):
    env_id = _create(ctx, tmp_path, "rev", schedulers=1)
    assert helm_values(ctx, name="rev")["scheduler"] == {"replicas": 1}  # nothing runs yet: the latest
    with ctx.store.session() as session:
        env = repository.get_live(session, "rev")
        env.running_revision = 1
        env.status = "AVAILABLE"
        repository.close_operations(session, env.id, step="done")  # as the create's end does
    environments.update_environment(ctx, name="rev", request=EnvironmentUpdate(schedulers=2))
    with ctx.store.session() as session:
        assert repository.get_by_id(session, env_id).revision == 2
    assert helm_values(ctx, name="rev")["scheduler"] == {"replicas": 1}
    assert export_environment(ctx, name="rev", format="helm-values").revision == 1


def test_unknown_format_and_unknown_environment(ctx: Context, tmp_path: Path):
    _create(ctx, tmp_path, "fmt")
    with pytest.raises(ValidationFailed, match="helm-values"):
        export_environment(ctx, name="fmt", format="terraform")
    with pytest.raises(EnvironmentNotFound):
        export_environment(ctx, name="nope", format="helm-values")


# -- the route and the CLI ---------------------------------------------------------------------------

@pytest.fixture
def client(ctx: Context):
    app = FastAPI()
    api_errors.install(app)
    audit.install(app)
    app.include_router(export_routes.router)
    app.state.ctx = ctx
    app.state.admin_key = ADMIN_KEY
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as test_client:
        yield test_client


def test_route_returns_values_and_image_files(client, ctx: Context, tmp_path: Path):
    _create(ctx, tmp_path, "web", requirements="pandas==2.2.3")
    answer = client.get("/api/v1/environments/web/export",
                        params={"format": "helm-values", "requirements_file": "v.yaml.requirements.txt"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["format"] == "helm-values" and body["values"]["executor"] == "LocalExecutor"
    assert "COPY v.yaml.requirements.txt /requirements.txt" in body["dockerfile"]
    assert body["requirements"] == "pandas==2.2.3\n"
    assert [s["name"] for s in body["secrets"]][0] == "web-fernet-key"
    bad = client.get("/api/v1/environments/web/export", params={"format": "kustomize"})
    assert bad.status_code == 400 and "helm-values" in bad.json()["error"]["message"]
    assert client.get("/api/v1/environments/missing/export").status_code == 404
    assert client.get("/api/v1/environments/web/export", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_cli_writes_values_requirements_and_dockerfile(monkeypatch, tmp_path: Path):
    export = render_export(spec(requirements="pandas==2.2.3"), name="cli",
                           requirements_file="values.yaml.requirements.txt").model_dump(mode="json")
    seen = {}

    def fake_call(method, path, **kwargs):
        seen.update(method=method, path=path, **kwargs)
        return export

    monkeypatch.setattr(export_cli, "call", fake_call)
    app = typer.Typer()
    env_app = typer.Typer()
    app.add_typer(env_app, name="env")
    env_app.add_typer(export_cli.export_app)
    out = tmp_path / "values.yaml"
    result = CliRunner().invoke(app, ["env", "export", "cli", "--format", "helm-values", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert seen["path"] == "/api/v1/environments/cli/export"
    assert seen["params"] == {"format": "helm-values", "requirements_file": "values.yaml.requirements.txt"}
    assert yaml.safe_load(out.read_text()) == export["values"]
    assert (tmp_path / "values.yaml.requirements.txt").read_text() == "pandas==2.2.3\n"
    assert (tmp_path / "values.yaml.Dockerfile").read_text() == export["dockerfile"]

    piped = CliRunner().invoke(app, ["env", "export", "cli"])
    assert piped.exit_code == 0
    assert seen["params"] == {"format": "helm-values"}
    assert yaml.safe_load(piped.stdout) == export["values"]  # notes go to stderr: stdout pipes into helm
    assert "--output FILE" in piped.stderr and "cli-metadata: connection" in piped.stderr
