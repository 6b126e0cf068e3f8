"""The worker bundle with a real store: what a joined host gets (the running revision, its
secrets, addresses as the host reaches them), and what is refused with its own error."""
from __future__ import annotations

import configparser
import tarfile
from pathlib import Path

import pytest

from hangar.context import Context
from hangar.domain import environments, workers
from hangar.schemas.spec import EnvironmentCreate
from hangar.domain.worker_bundle import (
    RemoteWorkersNeedReachableDatabase, bundle_archive, is_loopback, rewrite_cfg_addresses, rewrite_loopback,
    worker_bundle,
)
from hangar.domain.workers import ExecutorNotCelery
from hangar.errors import EnvironmentBusy
from hangar.runtime import airflow_config, plugins, remote_worker
from hangar.runtime.venvs import runtime_key
from hangar.store import repository
from hangar.store.models import RevisionRow

BROKER = "redis://:BROKER-PASSWORD@127.0.0.1:6379/0"
DB_URL = "postgresql://airflow:DB-PASSWORD@localhost:5432/sales"
PORTS = {"web": 28123, "worker_logs": 28124, "trigger_logs": 28125}


@pytest.mark.parametrize("url,expected", [
    ("redis://127.0.0.1:6379/0", "redis://cp.example.com:6379/0"),
    ("redis://:pw@localhost:6379/0", "redis://:pw@cp.example.com:6379/0"),
    ("amqp://guest:guest@127.0.0.1//", "amqp://guest:guest@cp.example.com//"),
    ("postgresql://u:p%40ss@[::1]:5432/db?sslmode=disable", "postgresql://u:p%40ss@cp.example.com:5432/db?sslmode=disable"),
    ("db+postgresql://u@127.0.0.1/db", "db+postgresql://u@cp.example.com/db"),
    ("http://127.0.0.1:28123/execution/", "http://cp.example.com:28123/execution/"),
    ("http://127.3.2.1:80", "http://cp.example.com:80"),  # all of 127/8 is this machine
    ("redis://broker.internal:6379/0", "redis://broker.internal:6379/0"),  # reachable as it is
    ("postgresql://u@10.0.0.5/db", "postgresql://u@10.0.0.5/db"),
    ("postgresql:///db?host=/run/pg", "postgresql:///db?host=/run/pg"),  # a socket: nothing to rewrite here
])
def test_loopback_hosts_become_the_name_the_host_used(url, expected):
    assert rewrite_loopback(url, host="cp.example.com") == expected


def test_an_ipv6_control_plane_address_is_bracketed():
    assert rewrite_loopback("redis://127.0.0.1:6379/0", host="fd00::1") == "redis://[fd00::1]:6379/0"
    assert is_loopback("::1") and is_loopback("LOCALHOST") and not is_loopback("10.1.1.1") and not is_loopback("cp")


def test_the_api_addresses_in_airflow_cfg_are_rewritten_and_nothing_else():
    cfg = ("[core]\nexecution_api_server_url = http://127.0.0.1:28123/execution/\ndags_folder = /srv/e/dags-current\n"
           "[api]\nbase_url = http://127.0.0.1:28123\n[webserver]\nbase_url = http://localhost:8080\n"
           "[logging]\nremote_base_log_folder = http://127.0.0.1:9000/logs\n")
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read_string(rewrite_cfg_addresses(cfg, host="10.0.0.7"))
    assert parsed["core"]["execution_api_server_url"] == "http://10.0.0.7:28123/execution/"
    assert parsed["api"]["base_url"] == "http://10.0.0.7:28123"
    assert parsed["webserver"]["base_url"] == "http://10.0.0.7:8080"
    assert parsed["core"]["dags_folder"] == "/srv/e/dags-current"
    assert parsed["logging"]["remote_base_log_folder"] == "http://127.0.0.1:9000/logs"  # the user's: left alone


def running_env(ctx: Context, tmp_path: Path, name: str, *, db_url: str | None = DB_URL, executor: str = "celery",
                **fields):
    """An environment as the reconciler leaves it once its revision runs: live airflow.cfg, DAGs link, plugins."""
    dags = tmp_path / f"{name}-dags"
    dags.mkdir()
    (dags / "hello.py").write_text("HELLO = 1\n")
    environments.create_environment(ctx, request=EnvironmentCreate(name=name, dags=str(dags), metadata_db_url=db_url,
                                                                    **fields))
    ctx.settings = ctx.settings.model_copy(update={"celery_broker_url": BROKER})  # after the create: it would call it
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        revision = session.get_one(RevisionRow, (env.id, env.revision))
        revision.spec = {**revision.spec, "executor": executor}
        env.running_revision = env.revision
        env.ports = PORTS
        spec = repository.get_spec(session, env.id, env.revision)
        env_id = env.id
    layout = airflow_config.EnvironmentLayout(root=ctx.settings.environments_dir / env_id)
    layout.create()
    plugins_dir = plugins.stage(layout.plugins, source=None)
    airflow_config.write_cfg_text(layout, airflow_config.render_cfg(spec=spec, layout=layout, ports=PORTS,
                                                                    plugins_dir=plugins_dir, broker_url=BROKER))
    layout.point_dags_at(dags)
    return env_id, layout, dags


def test_the_bundle_holds_what_a_worker_needs_with_addresses_as_the_host_reaches_them(ctx, tmp_path):
    env_id, layout, dags = running_env(ctx, tmp_path, "sales", environment_variables={"TEAM": "sales"},
                                       requirements="pendulum\n")
    token = workers.issue_token(ctx, name="sales")
    caller = workers.verify_token(ctx, name="sales", token=token.token)
    bundle = worker_bundle(ctx, caller=caller, host="10.0.0.7")
    with ctx.store.session() as session:
        stored = repository.get_secrets(session, ctx.envelope, env_id=env_id)

    assert (bundle.environment_id, bundle.environment, bundle.revision) == (env_id, "sales", 1)
    assert bundle.celery and bundle.queue == f"hangar.{env_id}" and bundle.worker_concurrency == 5
    assert bundle.requirements == "pendulum\n" and bundle.runtime_python == ctx.settings.runtime_python
    assert bundle.runtime_key == runtime_key(python=ctx.settings.runtime_python, airflow_version=bundle.airflow_version,
                                             requirements="pendulum\n", epoch=0, celery=True)
    assert bundle.env == {
        "TEAM": "sales",
        "AIRFLOW__CORE__FERNET_KEY": stored["fernet_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": stored["jwt_secret"],
        "AIRFLOW__API__SECRET_KEY": stored["secret_key"],
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://airflow:DB-PASSWORD@10.0.0.7:5432/sales",
        "AIRFLOW__CELERY__BROKER_URL": "redis://:BROKER-PASSWORD@10.0.0.7:6379/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+postgresql://airflow:DB-PASSWORD@10.0.0.7:5432/sales",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string(bundle.airflow_cfg)
    assert cfg["core"]["execution_api_server_url"] == "http://10.0.0.7:28123/execution/"
    assert cfg["api"]["base_url"] == "http://10.0.0.7:28123"
    assert cfg["core"]["dags_folder"] == str(layout.dags_link)  # paths are the host's business
    assert bundle.dags_sha256 == remote_worker.content_sha256(dags)
    assert bundle.plugins_sha256 == remote_worker.content_sha256(Path(cfg["core"]["plugins_folder"]))
    assert bundle.warnings and "PRIVATE_ONLY" in bundle.warnings[0] and "10.0.0.7:28123" in bundle.warnings[0]
    # a host on the control plane's own machine gets loopback addresses, and no warning
    assert worker_bundle(ctx, caller=caller, host="127.0.0.1").warnings == []

    (dags / "more.py").write_text("MORE = 1\n")
    assert worker_bundle(ctx, caller=caller, host="10.0.0.7").dags_sha256 != bundle.dags_sha256


def test_the_archives_are_the_running_dags_and_plugins(ctx, tmp_path):
    running_env(ctx, tmp_path, "sales")
    caller = workers.verify_token(ctx, name="sales", token=workers.issue_token(ctx, name="sales").token)
    for part, expected in (("dags", {"hello.py"}), ("plugins", {"hangar_login.py"})):
        path = bundle_archive(ctx, caller=caller, part=part)
        try:
            with tarfile.open(path) as tar:
                assert set(tar.getnames()) == expected
        finally:
            path.unlink()


def test_an_environment_on_the_embedded_database_is_refused_with_the_reason(ctx, tmp_path):
    running_env(ctx, tmp_path, "embedded", db_url=None)
    caller = workers.verify_token(ctx, name="embedded", token=workers.issue_token(ctx, name="embedded").token)
    with pytest.raises(RemoteWorkersNeedReachableDatabase) as refused:
        worker_bundle(ctx, caller=caller, host="10.0.0.7")
    assert refused.value.code == "REMOTE_WORKERS_NEED_REACHABLE_DATABASE"
    assert "embedded metadata database is reachable only on the control plane's machine" in refused.value.message
    assert "--metadata-db-url" in refused.value.message


def test_an_environment_that_went_back_to_the_local_executor_or_never_ran_is_refused(ctx, tmp_path):
    env_id, _, _ = running_env(ctx, tmp_path, "sales")
    caller = workers.verify_token(ctx, name="sales", token=workers.issue_token(ctx, name="sales").token)
    with ctx.store.session() as session:  # a token issued while it ran Celery outlives an update to local
        env = repository.get_by_id(session, env_id)
        revision = session.get_one(RevisionRow, (env_id, env.revision))
        revision.spec = {**revision.spec, "executor": "local"}
    with pytest.raises(ExecutorNotCelery):
        worker_bundle(ctx, caller=caller, host="10.0.0.7")
    with ctx.store.session() as session:  # back on Celery, but not started yet
        env = repository.get_by_id(session, env_id)
        env.running_revision = None
        revision = session.get_one(RevisionRow, (env_id, env.revision))
        revision.spec = {**revision.spec, "executor": "celery"}
    with pytest.raises(EnvironmentBusy):
        worker_bundle(ctx, caller=caller, host="10.0.0.7")
    with pytest.raises(EnvironmentBusy):
        bundle_archive(ctx, caller=caller, part="dags")


def test_a_joined_hosts_metrics_go_to_the_control_plane_only_where_it_receives_them(ctx, tmp_path):
    env_id, layout, _ = running_env(ctx, tmp_path, "sales")
    cfg = airflow_config.render_cfg(spec=_spec(ctx, env_id), layout=layout, ports=PORTS, broker_url=BROKER,
                                    statsd_port=8125)
    airflow_config.write_cfg_text(layout, cfg)
    token = workers.issue_token(ctx, name="sales")
    caller = workers.verify_token(ctx, name="sales", token=token.token)

    def statsd_host(bundle) -> str:
        parsed = configparser.ConfigParser(interpolation=None)
        parsed.read_string(bundle.airflow_cfg)
        return parsed["metrics"]["statsd_host"]

    on_loopback = worker_bundle(ctx, caller=caller, host="10.0.0.7")
    assert statsd_host(on_loopback) == "127.0.0.1"  # the host's own loopback: nothing listens, nothing leaves it
    assert any("StatsD metrics on its loopback only" in w for w in on_loopback.warnings)
    ctx.settings = ctx.settings.model_copy(update={"statsd_host": "0.0.0.0"})
    everywhere = worker_bundle(ctx, caller=caller, host="10.0.0.7")
    assert statsd_host(everywhere) == "10.0.0.7"
    assert not any("StatsD" in w for w in everywhere.warnings)


def _spec(ctx: Context, env_id: str):
    with ctx.store.session() as session:
        return repository.get_spec(session, env_id, 1)
