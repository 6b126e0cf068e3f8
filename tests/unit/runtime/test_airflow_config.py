"""airflow.cfg rendering (no secrets) and the component process environment (secrets)."""
from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from hangar.schemas.classes import PRESETS, EnvironmentClass
from hangar.schemas.spec import Spec
from hangar.runtime.airflow_config import (
    ADDON_PATH,
    CELERY_READY_CONFIG,
    EnvironmentLayout,
    base_url,
    process_env,
    render_cfg,
    workers_report_ready,
    write_cfg,
)

PORTS = {"web": 28123, "worker_logs": 28124, "trigger_logs": 28125}
SECRETS = {
    "fernet_key": "FERNET-zq8Yc1mS0nQ0u2wq3nM4Xn6z1X9L8kK7jJ6hH5gG4fE=",
    "jwt_secret": "JWT-SECRET-3f9a0c1b2d4e5f60718293a4b5c6d7e8",
    "secret_key": "SESSION-SECRET-0a1b2c3d4e5f",
}
DB_URL = "postgresql://hangar:DB-PASSWORD-9x8y7z@127.0.0.1:5432/hangar_env_1"


@pytest.fixture
def layout(tmp_path: Path) -> EnvironmentLayout:
    return EnvironmentLayout(root=tmp_path / "environments" / "e1")


def spec(version: str = "3.0.0", **fields) -> Spec:
    return Spec(dags="/srv/dags", airflow_version=version, **fields)


def parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def render(layout: EnvironmentLayout, **kwargs) -> configparser.ConfigParser:
    return parse(render_cfg(spec=spec(**kwargs), layout=layout, ports=PORTS))


# --- version-specific layout ---


@pytest.mark.parametrize("version", ["3.0.0", "3.1.7", "3.3.2"])
def test_airflow3_points_tasks_at_the_execution_api_on_the_web_port(layout, version):
    cfg = render(layout, version=version)
    assert cfg["core"]["execution_api_server_url"] == f"http://127.0.0.1:{PORTS['web']}/execution/"
    assert cfg["api"]["port"] == str(PORTS["web"])
    assert cfg["api"]["host"] == "127.0.0.1"
    assert cfg["api"]["base_url"] == base_url(PORTS)
    assert not cfg.has_section("webserver")
    assert cfg["dag_processor"]["parsing_processes"] == str(PRESETS[EnvironmentClass.small].parsing_processes)


def test_airflow2_uses_the_webserver_section_and_no_execution_api(layout):
    cfg = render(layout, version="2.11.2")
    assert not cfg.has_option("core", "execution_api_server_url")
    assert "execution_api_server_url" not in render_cfg(spec=spec("2.11.2"), layout=layout, ports=PORTS)
    assert cfg.has_section("webserver")
    assert cfg["webserver"]["web_server_port"] == str(PORTS["web"])
    assert cfg["webserver"]["web_server_host"] == "127.0.0.1"
    assert cfg["webserver"]["base_url"] == base_url(PORTS)
    assert cfg["scheduler"]["parsing_processes"] == str(PRESETS[EnvironmentClass.small].parsing_processes)
    assert not cfg.has_section("dag_processor")


@pytest.mark.parametrize("version", ["2.11.2", "3.0.0"])
def test_common_hangar_options(layout, version):
    cfg = render(layout, version=version)
    assert cfg["core"]["executor"] == "LocalExecutor"
    assert cfg["core"]["dags_folder"] == str(layout.dags_link)
    assert cfg["core"]["plugins_folder"] == str(layout.plugins)
    assert cfg["core"]["load_examples"] == "False"
    assert cfg["logging"]["base_log_folder"] == str(layout.logs)
    assert cfg["logging"]["worker_log_server_port"] == str(PORTS["worker_logs"])
    assert cfg["logging"]["trigger_log_server_port"] == str(PORTS["trigger_logs"])


def test_base_url_uses_the_web_port():
    assert base_url(PORTS) == "http://127.0.0.1:28123"


# --- classes and user overrides ---


def test_class_presets_are_rendered_and_differ(layout):
    rendered = {}
    for cls in EnvironmentClass:
        cfg = render(layout, environment_class=cls)
        preset = PRESETS[cls]
        slots = _slots(cls)
        assert cfg["core"]["parallelism"] == str(_per_scheduler(cls))
        assert cfg["core"]["max_active_tasks_per_dag"] == str(preset.max_active_tasks_per_dag or slots)
        assert cfg["core"]["max_active_runs_per_dag"] == str(preset.max_active_runs_per_dag)
        assert cfg["core"]["default_pool_task_slot_count"] == str(preset.default_pool_slots)
        assert cfg["dag_processor"]["parsing_processes"] == str(preset.parsing_processes)
        rendered[cls] = slots
    assert rendered[EnvironmentClass.small] < rendered[EnvironmentClass.medium] < rendered[EnvironmentClass.large]


@pytest.mark.parametrize("cls", list(EnvironmentClass))
@pytest.mark.parametrize("version", ["2.11.2", "3.0.0"])
def test_user_overrides_win_over_class_presets(layout, cls, version):
    cfg = render(layout, version=version, environment_class=cls,
                 airflow_configuration_options={"core.parallelism": "7", "scheduler.scheduler_heartbeat_sec": "9"})
    assert cfg["core"]["parallelism"] == "7"
    assert cfg["scheduler"]["scheduler_heartbeat_sec"] == "9"
    # the rest of the preset is untouched
    assert cfg["core"]["max_active_tasks_per_dag"] == str(PRESETS[cls].max_active_tasks_per_dag or _slots(cls))


def _slots(cls) -> int:
    """An mw1 class runs tasks_per_worker x max_workers (default min(10, class max)) at once."""
    from hangar.schemas.classes import parallelism
    from hangar.schemas.spec import Spec

    spec = Spec(dags="/tmp", airflow_version="3.0.0", environment_class=cls)
    return parallelism(PRESETS[cls], max_workers=spec.max_workers)


def _per_scheduler(cls) -> int:
    """The class's slots shared among its default schedulers (each LocalExecutor runs its parallelism)."""
    from hangar.schemas.spec import Spec

    schedulers = Spec(dags="/tmp", airflow_version="3.0.0", environment_class=cls).schedulers
    return -(-_slots(cls) // schedulers)


def test_mw1_classes_use_mwaa_tasks_per_worker():
    tasks = {c: PRESETS[c].worker_concurrency for c in EnvironmentClass if c.value.startswith("mw1.")}
    assert list(tasks.values()) == [3, 5, 10, 20, 40, 80]
    assert _slots(EnvironmentClass.mw1_micro) == 3  # one worker at most
    assert _slots(EnvironmentClass.mw1_small) == 50  # 5 tasks x 10 workers


def test_user_options_may_add_new_sections(layout):
    cfg = render(layout, airflow_configuration_options={"smtp.smtp_host": "mail.example.com", "core.max_map_length": "5"})
    assert cfg["smtp"]["smtp_host"] == "mail.example.com"
    assert cfg["core"]["max_map_length"] == "5"


def test_multiline_values_cannot_inject_options(layout):
    cfg = render(layout, airflow_configuration_options={"core.x": "line1\n[core]\nexecutor = SequentialExecutor"})
    assert cfg["core"]["x"] == "line1\n[core]\nexecutor = SequentialExecutor"
    assert cfg["core"]["executor"] == "LocalExecutor"


def test_percent_in_values_reads_back_under_airflows_interpolation(layout):
    value = "%(asctime)s %(levelname)s - %(message)s"
    text = render_cfg(spec=spec(airflow_configuration_options={"logging.log_format": value}), layout=layout, ports=PORTS)
    airflow_like = configparser.ConfigParser()  # BasicInterpolation, as AirflowConfigParser uses
    airflow_like.read_string(text)
    assert airflow_like.get("logging", "log_format") == value


def test_write_cfg_writes_the_rendered_text(layout):
    layout.create()
    write_cfg(spec=spec(), layout=layout, ports=PORTS)
    assert layout.cfg.read_text() == render_cfg(spec=spec(), layout=layout, ports=PORTS)
    assert not layout.cfg.with_suffix(".tmp").exists()


def test_layout_create_makes_a_private_root(layout):
    layout.create()
    for path in (layout.root, layout.plugins, layout.logs, layout.run):
        assert path.is_dir()
    assert layout.root.stat().st_mode & 0o777 == 0o700
    assert "HangarPlugin" in (layout.plugins / "hangar_login.py").read_text()


# --- secrets stay out of the cfg and go into the process environment ---


@pytest.mark.parametrize("version", ["2.11.2", "3.0.0"])
def test_secrets_are_in_the_process_env_and_never_in_the_cfg(layout, version, tmp_path):
    the_spec = spec(version, environment_variables={"MY_VAR": "1"})
    text = render_cfg(spec=the_spec, layout=layout, ports=PORTS)
    env = process_env(spec=the_spec, layout=layout, runtime_bin=tmp_path / "rt" / "bin", secrets=SECRETS, db_url=DB_URL)

    for value in [*SECRETS.values(), DB_URL, "DB-PASSWORD-9x8y7z"]:
        assert value not in text
    for name in ("fernet_key", "jwt_secret", "secret_key", "sql_alchemy_conn"):
        assert not parse(text).has_option("core", name)
        assert not parse(text).has_option("database", name)

    assert env["AIRFLOW__CORE__FERNET_KEY"] == SECRETS["fernet_key"]
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == SECRETS["jwt_secret"]
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == DB_URL
    session_var = "AIRFLOW__API__SECRET_KEY" if version.startswith("3") else "AIRFLOW__WEBSERVER__SECRET_KEY"
    assert env[session_var] == SECRETS["secret_key"]
    assert env["MY_VAR"] == "1"


def test_process_env_points_at_the_environment(layout, tmp_path):
    runtime_bin = tmp_path / "rt" / "bin"
    env = process_env(spec=spec(), layout=layout, runtime_bin=runtime_bin, secrets=SECRETS, db_url=DB_URL)
    assert env["AIRFLOW_HOME"] == str(layout.root)
    assert env["AIRFLOW_CONFIG"] == str(layout.cfg)
    assert env["PYTHONPATH"] == str(ADDON_PATH)
    assert env["PATH"].split(":")[0] == str(runtime_bin)


def test_process_env_does_not_inherit_the_control_planes_airflow_or_python_settings(layout, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "SequentialExecutor")
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", "inherited-fernet")
    monkeypatch.setenv("HANGAR_HOME", "/somewhere")
    monkeypatch.setenv("VIRTUAL_ENV", "/control/plane/venv")
    monkeypatch.setenv("PYTHONHOME", "/control/plane/python")
    monkeypatch.setenv("INNOCENT_VAR", "kept")
    env = process_env(spec=spec(), layout=layout, runtime_bin=tmp_path, secrets=SECRETS, db_url=DB_URL)
    assert "AIRFLOW__CORE__EXECUTOR" not in env
    assert env["AIRFLOW__CORE__FERNET_KEY"] == SECRETS["fernet_key"]
    assert "HANGAR_HOME" not in env
    assert "VIRTUAL_ENV" not in env
    assert "PYTHONHOME" not in env
    assert env["INNOCENT_VAR"] == "kept"


def test_hangar_values_win_over_user_variables_of_the_same_name(layout, tmp_path):
    # validation refuses these names; process_env must still never let them through
    the_spec = spec().model_copy(update={"environment_variables": {
        "AIRFLOW__CORE__FERNET_KEY": "user", "AIRFLOW_HOME": "/user", "AIRFLOW__API_AUTH__JWT_SECRET": "user",
    }})
    env = process_env(spec=the_spec, layout=layout, runtime_bin=tmp_path, secrets=SECRETS, db_url=DB_URL)
    assert env["AIRFLOW__CORE__FERNET_KEY"] == SECRETS["fernet_key"]
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == SECRETS["jwt_secret"]
    assert env["AIRFLOW_HOME"] == str(layout.root)


# --- MWAA's WebserverAccessMode and LoggingConfiguration, applied per component ---

def test_access_mode_sets_the_bind_address(layout):
    from hangar.schemas.spec import AccessMode

    assert render(layout, webserver_access_mode=AccessMode.PRIVATE_ONLY)["api"]["host"] == "127.0.0.1"
    assert render(layout, webserver_access_mode=AccessMode.PUBLIC_ONLY)["api"]["host"] == "0.0.0.0"
    assert render(layout, version="2.11.2", webserver_access_mode=AccessMode.PUBLIC_AND_PRIVATE)["webserver"][
        "web_server_host"] == "0.0.0.0"
    assert render(layout, version="2.11.2")["webserver"]["web_server_host"] == "127.0.0.1"


def test_log_levels_reach_the_components_that_write_those_logs():
    from hangar.schemas.spec import LoggingConfiguration, ModuleLogging, Spec
    from hangar.runtime.airflow_config import component_env

    logging = LoggingConfiguration(
        scheduler=ModuleLogging(log_level="ERROR"), task=ModuleLogging(log_level="DEBUG"),
        webserver=ModuleLogging(log_level="WARNING"), dag_processing=ModuleLogging(enabled=False),
        worker=ModuleLogging(log_level="CRITICAL"),
    )
    spec = Spec(dags="/tmp", airflow_version="3.3.2", logging=logging)
    level = lambda component: component_env(spec, component)["AIRFLOW__LOGGING__LOGGING_LEVEL"]
    assert level("api-server") == "WARNING" and level("webserver") == "WARNING"
    assert level("scheduler") == "DEBUG"  # tasks run in its executor: the most verbose of scheduler, worker, task
    assert level("dag-processor") == "CRITICAL"  # disabled
    assert level("triggerer") == "CRITICAL"


# --- Celery workers that report ready ---


@pytest.mark.parametrize("version", ["2.11.0", "3.3.2"])
def test_celery_environments_load_the_config_module_that_writes_ready_files(layout, version):
    text = render_cfg(spec=spec(version, executor="celery"), layout=layout, ports=PORTS, broker_url="redis://127.0.0.1:6379/0")
    assert parse(text)["celery"]["celery_config_options"] == CELERY_READY_CONFIG == \
        "hangar_airflow.celery_ready.CELERY_CONFIG"
    module, _, name = CELERY_READY_CONFIG.rpartition(".")
    assert (ADDON_PATH / Path(*module.split("."))).with_suffix(".py").is_file()
    assert workers_report_ready(text, {})


def test_local_environments_have_no_celery_config_module(layout):
    text = render_cfg(spec=spec("3.3.2", executor="local"), layout=layout, ports=PORTS)
    assert not parse(text).has_option("celery", "celery_config_options")
    assert not workers_report_ready(text, {})


def test_a_users_own_celery_config_options_is_kept_and_its_workers_write_no_ready_file(layout):
    """Their configuration module knows nothing of ready files: those workers count as RUNNING after
    start_seconds, as before."""
    own = spec("3.3.2", executor="celery", airflow_configuration_options={"celery.celery_config_options": "mine.CONFIG"})
    text = render_cfg(spec=own, layout=layout, ports=PORTS, broker_url="redis://127.0.0.1:6379/0")
    assert parse(text)["celery"]["celery_config_options"] == "mine.CONFIG"
    assert not workers_report_ready(text, {})
    # set as a variable, which Airflow reads before airflow.cfg
    text = render_cfg(spec=spec("3.3.2", executor="celery"), layout=layout, ports=PORTS,
                      broker_url="redis://127.0.0.1:6379/0")
    assert not workers_report_ready(text, {"AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "mine.CONFIG"})
