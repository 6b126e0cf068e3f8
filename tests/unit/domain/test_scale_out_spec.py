"""Scale-out fields in the spec, the change plan and the rendered configuration."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hangar.domain.changes import ChangeKind, plan_change
from hangar.schemas.spec import EnvironmentCreate, EnvironmentUpdate, Executor
from hangar.runtime import airflow_config
from hangar.runtime.venvs import base_packages, runtime_key


def _spec(tmp_path: Path, **fields):
    return EnvironmentCreate(name="e", dags=str(tmp_path), **fields).to_spec()


def test_executor_defaults_to_local_and_concurrency_to_the_class(tmp_path):
    spec = _spec(tmp_path)
    assert spec.executor == Executor.local and spec.worker_concurrency == 5
    assert _spec(tmp_path, environment_class="mw1.large").worker_concurrency == 20
    assert _spec(tmp_path, executor="celery", worker_concurrency=7).worker_concurrency == 7


@pytest.mark.parametrize(("fields", "message"), [
    ({"min_workers": 3, "max_workers": 2}, "min_workers 3 is above max_workers 2"),
    ({"max_workers": 26}, "less than or equal to 25"),
    ({"schedulers": 6}, "less than or equal to 5"),
    ({"worker_concurrency": 0}, "greater than or equal to 1"),
    ({"executor": "kubernetes"}, "'local' or 'celery'"),
])
def test_bad_counts_are_refused_with_the_field_named(tmp_path, fields, message):
    with pytest.raises(ValidationError, match=message):
        _spec(tmp_path, **fields)


def test_executor_change_is_a_runtime_change_and_the_celery_runtime_has_its_own_key(tmp_path):
    local = _spec(tmp_path)
    celery = local.merged(EnvironmentUpdate(executor="celery"))
    plan = plan_change(local, celery, root=tmp_path / "env")
    assert plan.kind == ChangeKind.RUNTIME and "worker" in plan.restart
    assert base_packages("3.3.2", celery=True)[0] == "apache-airflow[postgres,statsd,celery]==3.3.2"
    assert runtime_key(python="3.11", airflow_version="3.3.2", requirements=None) != \
        runtime_key(python="3.11", airflow_version="3.3.2", requirements=None, celery=True)


def test_worker_concurrency_restarts_only_the_workers_and_the_scheduler(tmp_path):
    before = _spec(tmp_path, executor="celery", min_workers=1, max_workers=4)
    after = before.merged(EnvironmentUpdate(worker_concurrency=2))
    plan = plan_change(before, after, root=tmp_path / "env")
    assert plan.kind == ChangeKind.CONFIG
    assert plan.restart == ["worker", "scheduler"]  # the workers' command; the scheduler's parallelism


def test_more_schedulers_restart_nothing_that_runs(tmp_path):
    before = _spec(tmp_path, executor="celery")
    plan = plan_change(before, before.merged(EnvironmentUpdate(schedulers=3)), root=tmp_path / "env")
    assert plan.kind == ChangeKind.CONFIG and plan.restart == []
    assert plan.steps == ["run 3 schedulers (one that goes drains its running tasks)"]


def test_celery_configuration_isolates_the_environment_and_keeps_secrets_out_of_the_file(tmp_path):
    spec = _spec(tmp_path, executor="celery", min_workers=1, max_workers=4)
    layout = airflow_config.EnvironmentLayout(root=tmp_path / "env-id-1")
    text = airflow_config.render_cfg(spec=spec, layout=layout, ports={"web": 1, "worker_logs": 2, "trigger_logs": 3},
                                     broker_url="redis://:pw@127.0.0.1:6379/0")
    assert "executor = CeleryExecutor" in text and "default_queue = hangar.env-id-1" in text
    assert "global_keyprefix = hangar.env-id-1:" in text and "parallelism = 20" in text
    assert "pw@" not in text and "broker_url" not in text
    env = airflow_config.process_env(spec=spec, layout=layout, runtime_bin=tmp_path, db_url="postgresql://db",
                                     secrets={"fernet_key": "f", "jwt_secret": "j", "secret_key": "s"},
                                     broker_url="redis://:pw@127.0.0.1:6379/0")
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://:pw@127.0.0.1:6379/0"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql://db"
