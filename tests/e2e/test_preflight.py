"""Pre-flight checks against real runtimes built with uv and real Airflow 3.3.2."""
from __future__ import annotations

import atexit
import base64
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest
from uv import find_uv_bin

from hangar.schemas.requirements import check_requirements
from hangar.errors import (
    AirflowVersionNotFound,
    DagImportErrors,
    PluginImportFailed,
    RequirementImportFailed,
    RuntimeBuildFailed,
    StartupScriptFailed,
    StartupScriptTimedOut,
)
from hangar.runtime.preflight import (
    DagImportError,
    check_imports,
    check_plugins,
    check_startup_script,
    new_dag_errors,
    package_diff,
    parse_dags,
)
from hangar.runtime.venvs import Runtime, ensure_runtime
from tests.e2e.harness import runtime_python, shared_runtimes_dir

pytestmark = pytest.mark.e2e

VERSION = "3.3.2"


def broken_wheel(folder: Path) -> Path:
    """A wheel that installs cleanly and whose module raises when imported."""
    files = {
        "brokenpkg/__init__.py": "import os\nraise RuntimeError('brokenpkg needs BROKENPKG_LICENSE to be set')\n",
        "brokenpkg-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: brokenpkg\nVersion: 1.0\n",
        "brokenpkg-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        "brokenpkg-1.0.dist-info/top_level.txt": "brokenpkg\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    record.append("brokenpkg-1.0.dist-info/RECORD,,")
    path = folder / "brokenpkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
        wheel.writestr("brokenpkg-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return path


@functools.cache
def broken_requirements() -> tuple[Path, str]:
    """The broken wheel, in a folder every user can read that is removed at exit, and requirements
    that name it beside inflection. test_update_failures adds the same text to an environment, so
    the runtime for it is built once per run, by whichever runs first."""
    folder = Path(tempfile.mkdtemp(prefix="hangar-e2e-broken-"))
    folder.chmod(0o755)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    wheel = broken_wheel(folder)
    return wheel, f"inflection\nbrokenpkg @ {wheel.as_uri()}\n"


class Runtimes:
    def __init__(self) -> None:
        self.wheel, self.with_extra = broken_requirements()
        self.broken_line = f"brokenpkg @ {self.wheel.as_uri()}"
        check_requirements(self.with_extra)  # the form users may write
        build = dict(root=shared_runtimes_dir(), python=runtime_python(), airflow_version=VERSION,
                     progress=lambda _: None)
        self.plain: Runtime = ensure_runtime(requirements=None, **build)
        self.extra: Runtime = ensure_runtime(requirements=self.with_extra, **build)


@pytest.fixture(scope="module")
def runtimes() -> Runtimes:
    return Runtimes()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "airflow-home"
    home.mkdir()
    return {"PATH": os.environ["PATH"], "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}


def freeze(runtime: Runtime) -> str:
    return subprocess.run([find_uv_bin(), "pip", "freeze", "--python", str(runtime.python)],
                          capture_output=True, text=True, check=True).stdout


# --- requirements ---


def test_a_good_requirement_imports(runtimes, env):
    check_imports(runtime=runtimes.extra, requirements="# pinned below\ninflection  # a comment\n--no-binary :none:\n", env=env)


def test_a_package_that_installs_but_fails_on_import_is_named_with_its_traceback(runtimes, env):
    with pytest.raises(RequirementImportFailed) as caught:
        check_imports(runtime=runtimes.extra, requirements=runtimes.with_extra, env=env)
    message = caught.value.message
    assert caught.value.code == "REQUIREMENT_IMPORT_FAILED"
    assert "requirement 'brokenpkg'" in message and "import brokenpkg" in message
    assert "RuntimeError: brokenpkg needs BROKENPKG_LICENSE to be set" in message
    assert "Traceback" in message
    assert "requirement 'inflection'" not in message


# --- plugins ---


def test_a_good_plugin_passes(runtimes, env, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "my_plugin.py").write_text(
        "from airflow.plugins_manager import AirflowPlugin\n\n\nclass MyPlugin(AirflowPlugin):\n    name = 'mine'\n"
    )
    check_plugins(runtime=runtimes.plain, plugins_dir=plugins, env=env)


def test_a_plugin_that_raises_is_named_with_its_traceback(runtimes, env, tmp_path):
    plugins = tmp_path / "plugins"
    (plugins / "sub").mkdir(parents=True)
    (plugins / "fine.py").write_text("VALUE = 1\n")
    (plugins / "sub" / "bad_plugin.py").write_text("import json\n\nraise ValueError('no connection id configured')\n")
    with pytest.raises(PluginImportFailed) as caught:
        check_plugins(runtime=runtimes.plain, plugins_dir=plugins, env=env)
    message = caught.value.message
    assert "plugin sub/bad_plugin.py fails to load" in message
    assert "ValueError: no connection id configured" in message
    assert 'bad_plugin.py", line 3' in message
    assert "fine.py" not in message


# --- startup script ---


def test_a_startup_script_that_succeeds_reports_exports_and_reserved_warnings(env):
    result = check_startup_script(
        script="export MY_SETTING=1\nexport AIRFLOW__CORE__EXECUTOR=SequentialExecutor\necho done\n", env=env, timeout=60
    )
    assert result.exports == {"MY_SETTING": "1", "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor"}
    assert result.warnings == [
        "hangar: startup script set reserved variable AIRFLOW__CORE__EXECUTOR; reset to the managed value"
    ]


def test_a_failing_startup_script_gives_its_exit_code_and_last_lines(env):
    script = "".join(f"echo line {n}\n" for n in range(40)) + "echo 'yum: package not found' >&2\nexit 4\n"
    with pytest.raises(StartupScriptFailed) as caught:
        check_startup_script(script=script, env=env, timeout=60)
    message = caught.value.message
    assert "exited with code 4" in message
    assert "yum: package not found" in message and "line 39" in message
    assert "line 5\n" not in message


def test_a_hanging_startup_script_times_out(env):
    with pytest.raises(StartupScriptTimedOut) as caught:
        check_startup_script(script="echo waiting\nsleep 1000\n", env=env, timeout=2)
    assert "did not finish within 2 s" in caught.value.message
    assert "waiting" in caught.value.message


# --- DAGs ---


def test_parse_dags_reports_a_syntax_error_with_file_and_line(runtimes, env, tmp_path):
    dags = tmp_path / "dags"
    (dags / "nested").mkdir(parents=True)
    (dags / "good.py").write_text(
        "from airflow.sdk import DAG\n\nwith DAG('good', schedule=None):\n    pass\n"
    )
    (dags / "nested" / "broken.py").write_text(
        "from airflow.sdk import DAG\n\nwith DAG('broken', schedule=None:\n    pass\n"
    )
    (dags / "raises.py").write_text(
        "from airflow.sdk import DAG\n\n\ndef build():\n    return {}['missing']\n\n\nbuild()\n"
    )
    errors = parse_dags(runtime=runtimes.plain, dags_dir=dags, env=env)
    assert [(e.file, e.line) for e in errors] == [("nested/broken.py", 3), ("raises.py", 5)]
    assert errors[0].message.startswith("SyntaxError")
    assert errors[1].message == "KeyError: 'missing'"

    old = [DagImportError(file="raises.py", line=5, message="KeyError: 'missing'")]
    fresh = new_dag_errors(old, errors)
    assert [e.file for e in fresh] == ["nested/broken.py"]
    message = DagImportErrors(fresh).message
    assert "nested/broken.py:3: SyntaxError" in message


def test_parse_dags_with_clean_dags_finds_nothing(runtimes, env, tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "good.py").write_text("from airflow.sdk import DAG\n\nwith DAG('good', schedule=None):\n    pass\n")
    assert parse_dags(runtime=runtimes.plain, dags_dir=dags, env=env) == []


# --- package diff ---


def test_package_diff_shows_added_and_removed_requirements_without_installing(runtimes):
    before = {runtime: freeze(runtime) for runtime in (runtimes.plain, runtimes.extra)}
    built = sorted(p.name for p in shared_runtimes_dir().iterdir())

    added = package_diff(old=runtimes.plain, airflow_version=VERSION, requirements=runtimes.with_extra)
    assert {p.name for p in added.added} == {"inflection", "brokenpkg"}
    assert added.removed == [] and added.changed == []
    assert next(p for p in added.added if p.name == "brokenpkg").version == runtimes.wheel.as_uri()

    removed = package_diff(old=runtimes.extra, airflow_version=VERSION, requirements=None)
    assert {p.name for p in removed.removed} == {"inflection", "brokenpkg"}
    assert removed.added == [] and removed.changed == []

    same = package_diff(old=runtimes.extra, airflow_version=VERSION, requirements=runtimes.with_extra)
    assert same.added == same.removed == same.changed == []

    assert {runtime: freeze(runtime) for runtime in (runtimes.plain, runtimes.extra)} == before
    assert sorted(p.name for p in shared_runtimes_dir().iterdir()) == built


def test_package_diff_shows_a_changed_version(runtimes):
    diff = package_diff(old=runtimes.extra, airflow_version=VERSION, requirements=f"inflection==0.5.0\n{runtimes.broken_line}\n")
    assert [(c.name, c.new) for c in diff.changed] == [("inflection", "0.5.0")]


def test_package_diff_of_an_unresolvable_requirement_gives_uvs_message(runtimes):
    with pytest.raises(RuntimeBuildFailed) as caught:
        package_diff(old=runtimes.plain, airflow_version=VERSION, requirements="six==999.0\n")
    assert "six==999.0" in caught.value.message
    assert "unsatisfiable" in caught.value.message or "no version" in caught.value.message


def test_package_diff_to_an_airflow_that_does_not_exist_says_so(runtimes):
    with pytest.raises(AirflowVersionNotFound) as caught:
        package_diff(old=runtimes.plain, airflow_version="3.99.0", requirements=None)
    assert "3.99.0" in caught.value.message


def test_hangars_own_plugin_loads_beside_the_users(runtimes, env, tmp_path):
    # what plugins.stage puts into every revision's folder; the add-on is on the components' PYTHONPATH
    from hangar.runtime.airflow_config import ADDON_PATH
    from hangar.runtime.plugins import HANGAR_PLUGIN

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "hangar_login.py").write_text(HANGAR_PLUGIN)
    check_plugins(runtime=runtimes.plain, plugins_dir=plugins, env={**env, "PYTHONPATH": str(ADDON_PATH)})
