"""The change plan picks the least disruptive path for each kind of change."""
from __future__ import annotations

from pathlib import Path

import pytest

from hangar.domain.changes import ChangeKind, describe_changes, plan_change
from hangar.schemas.spec import Spec

ROOT = Path("/srv/hangar/environments/e1")


def spec(**fields) -> Spec:
    return Spec(**{"dags": "/srv/dags", "airflow_version": "3.3.2", **fields})


def plan(old: Spec, new: Spec):
    return plan_change(old, new, root=ROOT, from_revision=1, to_revision=2)


def test_tags_and_schedules_restart_nothing():
    result = plan(spec(), spec(tags={"team": "a"}, snapshot_schedule="0 3 * * *", weekly_maintenance_window_start="TUE:03:30"))
    assert result.kind == ChangeKind.NONE and result.restart == []


def test_a_new_dags_folder_restarts_nothing():
    result = plan(spec(), spec(dags="/srv/other"))
    assert result.kind == ChangeKind.DAGS and result.restart == []


@pytest.mark.parametrize(("key", "components"), [
    ("scheduler.task_queued_timeout", ["scheduler"]),
    ("triggerer.capacity", ["triggerer"]),
    ("dag_processor.refresh_interval", ["dag-processor"]),
    ("api.workers", ["api-server"]),
    ("core.parallelism", ["scheduler"]),
    ("core.default_task_retries", ["dag-processor", "triggerer", "scheduler", "api-server"]),
    ("logging.remote_logging", ["dag-processor", "triggerer", "scheduler", "api-server"]),
])
def test_a_config_change_restarts_only_its_readers(key, components):
    result = plan(spec(), spec(airflow_configuration_options={key: "7"}))
    assert result.kind == ChangeKind.CONFIG and result.restart == components


def test_environment_variables_restart_every_component_in_order():
    result = plan(spec(), spec(environment_variables={"TEAM": "blue"}))
    assert result.restart == ["dag-processor", "triggerer", "scheduler", "api-server"]


def test_a_log_level_restarts_the_components_that_write_that_log():
    result = plan(spec(), spec(logging={"dag_processing": {"log_level": "DEBUG"}}))
    assert result.kind == ChangeKind.CONFIG and result.restart == ["dag-processor"]


def test_airflow_2_has_no_dag_processor_or_api_server():
    result = plan(spec(airflow_version="2.11.2"), spec(airflow_version="2.11.2", environment_variables={"A": "1"}))
    assert result.restart == ["triggerer", "scheduler", "webserver"]


@pytest.mark.parametrize("change", [
    {"requirements": "inflection\n"}, {"startup_script": "export A=1\n"}, {"plugins": "/srv/plugins", "plugins_sha256": "ab"},
])
def test_requirements_plugins_and_the_startup_script_need_a_new_runtime(change):
    result = plan(spec(), spec(**change))
    assert result.kind == ChangeKind.RUNTIME
    assert result.restart == ["dag-processor", "triggerer", "scheduler", "api-server"]


def test_a_changed_plugins_folder_content_is_a_runtime_change_even_at_the_same_path():
    result = plan(spec(plugins="/srv/plugins", plugins_sha256="aa"), spec(plugins="/srv/plugins", plugins_sha256="bb"))
    assert result.kind == ChangeKind.RUNTIME


def test_an_airflow_version_change_is_an_upgrade_with_a_snapshot_step():
    result = plan(spec(airflow_version="3.2.2"), spec())
    assert result.kind == ChangeKind.UPGRADE and result.airflow == "3.2.2 -> 3.3.2"
    assert any("snapshot" in step for step in result.steps)


def test_dags_with_a_config_change_move_the_link_first():
    result = plan(spec(), spec(dags="/srv/other", environment_variables={"A": "1"}))
    assert result.kind == ChangeKind.CONFIG and result.steps[0].startswith("point the DAGs folder")


def test_history_lines_name_what_changed():
    old = spec(requirements="six\n", environment_variables={"TEAM": "a"})
    new = spec(requirements="inflection\n", environment_variables={"TEAM": "b"}, startup_script="echo hi\n")
    lines = describe_changes(old, new)
    assert "environment_variables: TEAM: 'a' -> 'b'" in lines
    assert "requirements: +inflection, -six" in lines
    assert "startup_script: 0 -> 8 characters" in lines
    assert describe_changes(None, new) == ["created"]
