"""Validation of the environment spec (EnvironmentCreate / EnvironmentUpdate / Spec)."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hangar.schemas.classes import EnvironmentClass
from hangar.schemas.spec import OWNED_CONFIG_KEYS, OWNED_ENV_VARS, EnvironmentCreate, EnvironmentUpdate, Spec
from hangar.schemas.versions import parse_version


@pytest.fixture
def dags(tmp_path: Path) -> Path:
    folder = tmp_path / "dags"
    folder.mkdir()
    return folder


def create(dags: Path, **fields) -> EnvironmentCreate:
    return EnvironmentCreate(**{"name": "env", "dags": str(dags), **fields})


def error_text(excinfo: pytest.ExceptionInfo[ValidationError]) -> str:
    return str(excinfo.value)


def error_fields(excinfo: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    return {str(err["loc"][0]) for err in excinfo.value.errors() if err["loc"]}


# --- name (MWAA: [a-zA-Z][0-9a-zA-Z-_]*, 1..80 characters) ---


@pytest.mark.parametrize("name", ["a", "A", "my-env", "my_env", "Env-1_x", "a" * 80, "z9-_Z"])
def test_valid_names_are_accepted(dags, name):
    assert create(dags, name=name).name == name


def test_name_of_80_chars_ok_and_81_rejected(dags):
    assert create(dags, name="n" * 80).name == "n" * 80
    with pytest.raises(ValidationError) as excinfo:
        create(dags, name="n" * 81)
    assert error_fields(excinfo) == {"name"}


@pytest.mark.parametrize(
    "name",
    ["", "1env", "9", "-env", "_env", "my env", " env", "env ", "env.name", "env/x", "énv", "env\n", "env!"],
)
def test_invalid_names_are_rejected(dags, name):
    with pytest.raises(ValidationError) as excinfo:
        create(dags, name=name)
    assert error_fields(excinfo) == {"name"}


# --- airflow_version ---


@pytest.mark.parametrize("version", ["2.11.0", "2.11.2", "2.11.15", "3.0.0", "3.1.7", "3.3.2"])
def test_supported_versions_are_accepted(dags, version):
    assert create(dags, airflow_version=version).airflow_version == version


@pytest.mark.parametrize("version", ["2.10.5", "2.9.3", "1.10.15", "4.0.0", "2.0.0"])
def test_unsupported_versions_are_rejected_as_unsupported(dags, version):
    with pytest.raises(ValidationError) as excinfo:
        create(dags, airflow_version=version)
    text = error_text(excinfo)
    assert version in text
    assert "not supported" in text


@pytest.mark.parametrize("version", ["latest", "3", "3.0", "3.0.0rc1", "v3.0.0", "3.0.0 ", "", "3.0.0.1", "3.0.x"])
def test_malformed_versions_are_rejected(dags, version):
    with pytest.raises(ValidationError) as excinfo:
        create(dags, airflow_version=version)
    assert error_fields(excinfo) == {"airflow_version"}
    assert "not a version" in error_text(excinfo)


def test_default_version_is_supported(dags):
    env = create(dags)
    major, minor, _ = parse_version(env.airflow_version)
    assert major == 3 or (major, minor) >= (2, 11)


def test_parse_version():
    assert parse_version("2.11.2") == (2, 11, 2)
    assert parse_version("3.10.0") > parse_version("3.9.9")
    with pytest.raises(ValueError, match="latest"):
        parse_version("latest")


# --- dags folder ---


def test_dags_folder_must_exist_and_message_names_path(tmp_path):
    missing = tmp_path / "nope" / "dags"
    with pytest.raises(ValidationError) as excinfo:
        create(missing)
    text = error_text(excinfo)
    assert str(missing) in text
    assert "does not exist" in text


def test_dags_must_be_a_folder_and_message_names_path(tmp_path):
    a_file = tmp_path / "dag.py"
    a_file.write_text("")
    with pytest.raises(ValidationError) as excinfo:
        create(a_file)
    text = error_text(excinfo)
    assert str(a_file) in text
    assert "not a folder" in text


def test_dags_path_is_resolved(dags, monkeypatch):
    monkeypatch.chdir(dags.parent)
    env = EnvironmentCreate(name="env", dags="./dags/../dags")
    assert env.dags == str(dags.resolve())


def test_update_checks_dags_too(tmp_path):
    with pytest.raises(ValidationError) as excinfo:
        EnvironmentUpdate(dags=str(tmp_path / "missing"))
    assert str(tmp_path / "missing") in error_text(excinfo)


# --- airflow_configuration_options ---


@pytest.mark.parametrize("key", ["core.parallelism", "scheduler.min_file_process_interval", "my_section.my_key_2", "_a._b"])
def test_config_keys_of_the_right_shape_are_accepted(dags, key):
    assert create(dags, airflow_configuration_options={key: "1"}).airflow_configuration_options == {key: "1"}


@pytest.mark.parametrize(
    "key", ["parallelism", "Core.parallelism", "core.Parallelism", "core.parallelism.x", "core.", ".parallelism",
            "core parallelism", "core-x.y", "1core.x", "core.1x", "core..x", ""],
)
def test_config_keys_of_the_wrong_shape_are_rejected(dags, key):
    with pytest.raises(ValidationError) as excinfo:
        create(dags, airflow_configuration_options={key: "1"})
    text = error_text(excinfo)
    assert repr(key) in text
    assert "section.key" in text


@pytest.mark.parametrize("key", sorted(OWNED_CONFIG_KEYS))
def test_every_owned_config_key_is_rejected_by_name(dags, key):
    with pytest.raises(ValidationError) as excinfo:
        create(dags, airflow_configuration_options={key: "x"})
    text = error_text(excinfo)
    assert repr(key) in text
    assert "managed by Hangar" in text


@pytest.mark.parametrize(
    "key", ["core.executor", "database.sql_alchemy_conn", "core.fernet_key", "core.dags_folder",
            "core.execution_api_server_url"],
)
def test_named_owned_keys_are_in_the_owned_set(key):
    # the security-relevant keys the docs promise; guards against someone trimming the set
    assert key in OWNED_CONFIG_KEYS


@pytest.mark.parametrize("key", sorted(OWNED_CONFIG_KEYS))
def test_owned_config_keys_rejected_on_update(key):
    with pytest.raises(ValidationError) as excinfo:
        EnvironmentUpdate(airflow_configuration_options={key: "x"})
    assert repr(key) in error_text(excinfo)


def test_owned_key_hidden_among_valid_keys_is_still_rejected(dags):
    with pytest.raises(ValidationError) as excinfo:
        create(dags, airflow_configuration_options={"core.parallelism": "4", "core.executor": "CeleryExecutor"})
    assert "'core.executor'" in error_text(excinfo)


def test_config_key_with_trailing_newline_is_rejected(dags):
    with pytest.raises(ValidationError):
        create(dags, airflow_configuration_options={"core.executor\n": "SequentialExecutor"})


def test_version_with_trailing_newline_is_rejected(dags):
    with pytest.raises(ValidationError):
        create(dags, airflow_version="3.0.0\n")


def test_env_var_name_with_trailing_newline_is_rejected(dags):
    with pytest.raises(ValidationError):
        create(dags, environment_variables={"AIRFLOW__CORE__EXECUTOR\n": "SequentialExecutor"})


# --- environment_variables ---


@pytest.mark.parametrize(
    "var",
    ["AIRFLOW__CORE__EXECUTOR", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD",
     "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_SECRET", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__CORE__FERNET_KEY_SECRET",
     "AIRFLOW__CORE__FERNET_KEY_CMD", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
     "AIRFLOW__WEBSERVER__SECRET_KEY", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__AUTH_MANAGER"],
)
def test_env_vars_setting_owned_config_keys_are_rejected(dags, var):
    with pytest.raises(ValidationError) as excinfo:
        create(dags, environment_variables={var: "x"})
    text = error_text(excinfo)
    assert repr(var) in text
    assert "managed by Hangar" in text


@pytest.mark.parametrize("var", sorted(OWNED_ENV_VARS))
def test_owned_env_vars_are_rejected(dags, var):
    with pytest.raises(ValidationError) as excinfo:
        create(dags, environment_variables={var: "/x"})
    text = error_text(excinfo)
    assert repr(var) in text
    assert "managed by Hangar" in text


@pytest.mark.parametrize("var", ["AIRFLOW_HOME", "PYTHONPATH"])
def test_airflow_home_and_pythonpath_are_owned(var):
    assert var in OWNED_ENV_VARS


@pytest.mark.parametrize("var", ["AIRFLOW__CORE__EXECUTOR", "PYTHONPATH"])
def test_owned_env_vars_rejected_on_update(var):
    with pytest.raises(ValidationError) as excinfo:
        EnvironmentUpdate(environment_variables={var: "x"})
    assert repr(var) in error_text(excinfo)


@pytest.mark.parametrize(
    "var",
    ["MY_VAR", "AIRFLOW__CORE__PARALLELISM", "AIRFLOW_VAR_FOO", "AIRFLOW_CONN_MY_DB", "_x", "AIRFLOW__CORE",
     "AIRFLOW__SCHEDULER__PARSING_PROCESSES"],
)
def test_harmless_env_vars_are_accepted(dags, var):
    assert create(dags, environment_variables={var: "1"}).environment_variables == {var: "1"}


@pytest.mark.parametrize("var", ["1VAR", "MY-VAR", "MY VAR", "", "A=B"])
def test_env_var_names_must_be_valid(dags, var):
    with pytest.raises(ValidationError) as excinfo:
        create(dags, environment_variables={var: "1"})
    assert "not a valid variable name" in error_text(excinfo)


@pytest.mark.parametrize("var", ["AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API_AUTH__JWT_SECRET_CMD"])
def test_env_var_setting_owned_jwt_secret_is_rejected(dags, var):
    with pytest.raises(ValidationError):
        create(dags, environment_variables={var: "x"})


# --- other fields ---


def test_unknown_fields_are_rejected(dags):
    with pytest.raises(ValidationError) as excinfo:
        create(dags, executor="CeleryExecutor")
    assert error_fields(excinfo) == {"executor"}
    with pytest.raises(ValidationError):
        EnvironmentUpdate(name="other")


def test_metadata_db_url_must_be_postgres(dags):
    assert create(dags, metadata_db_url="postgresql://u:p@h:5432/db").metadata_db_url
    with pytest.raises(ValidationError) as excinfo:
        create(dags, metadata_db_url="sqlite:////tmp/x.db")
    assert error_fields(excinfo) == {"metadata_db_url"}


def test_requirements_pinning_airflow_are_rejected_in_spec(dags):
    with pytest.raises(ValidationError) as excinfo:
        create(dags, requirements="requests\napache-airflow==2.0.0\n")
    assert "line 2" in error_text(excinfo)
    with pytest.raises(ValidationError):
        EnvironmentUpdate(requirements="apache-airflow==2.0.0")


def test_environment_class_values(dags):
    assert create(dags).environment_class is EnvironmentClass.small
    assert create(dags, environment_class="large").environment_class is EnvironmentClass.large
    with pytest.raises(ValidationError):
        create(dags, environment_class="huge")


# --- EnvironmentUpdate / Spec.merged ---


def test_update_with_nothing_set_is_rejected():
    with pytest.raises(ValidationError) as excinfo:
        EnvironmentUpdate()
    assert "at least one field" in error_text(excinfo)


def test_update_with_unsupported_version_is_rejected():
    with pytest.raises(ValidationError):
        EnvironmentUpdate(airflow_version="2.10.5")


def base_spec(dags: Path) -> Spec:
    return Spec(
        dags=str(dags), airflow_version="3.0.0", requirements="requests==2.32.0",
        airflow_configuration_options={"core.parallelism": "4"}, environment_variables={"A": "1"},
        environment_class=EnvironmentClass.medium, tags={"team": "data"},
    )


def test_merged_keeps_untouched_fields(dags):
    spec = base_spec(dags)
    merged = spec.merged(EnvironmentUpdate(airflow_version="3.1.0"))
    assert merged.airflow_version == "3.1.0"
    assert merged.model_dump(exclude={"airflow_version"}) == spec.model_dump(exclude={"airflow_version"})
    assert spec.airflow_version == "3.0.0"  # the original revision is not changed


def test_merged_replaces_dicts_wholesale(dags):
    spec = base_spec(dags)
    merged = spec.merged(EnvironmentUpdate(tags={"owner": "me"}, environment_variables={}))
    assert merged.tags == {"owner": "me"}
    assert merged.environment_variables == {}
    assert merged.airflow_configuration_options == {"core.parallelism": "4"}
    assert merged.requirements == "requests==2.32.0"


def test_merged_can_clear_requirements(dags):
    merged = base_spec(dags).merged(EnvironmentUpdate(requirements=None))
    assert merged.requirements is None
    assert merged.airflow_version == "3.0.0"


@pytest.mark.parametrize("field", ["airflow_version", "dags", "environment_class", "tags"])
def test_merged_with_explicit_null_never_yields_an_invalid_spec(dags, field):
    spec = base_spec(dags)
    try:
        update = EnvironmentUpdate(**{field: None})
    except ValidationError:
        return  # rejecting the null is a fine answer
    merged = spec.merged(update)
    Spec.model_validate(merged.model_dump())  # a null must not slip into the stored revision


def test_an_update_of_the_dags_folder_keeps_it(tmp_path):
    from hangar.schemas.spec import EnvironmentUpdate, Spec

    (tmp_path / "b").mkdir()
    spec = Spec(dags=str(tmp_path), airflow_version="3.3.2")
    merged = spec.merged(EnvironmentUpdate(dags=str(tmp_path / "b")))
    assert merged.dags == str(tmp_path / "b") and merged.source is None
