"""Startup scripts: real bash, real process groups, and the launch wrapper's exec."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from hangar.runtime import airflow_addon
from hangar.runtime.airflow_addon.hangar_airflow.startup import run_script
from hangar.runtime.startup import RESERVED_VARIABLES, launch_argv, launch_env

ADDON = Path(airflow_addon.__file__).parent


def script(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "startup.sh"
    path.write_text(text)
    return path


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def launch(tmp_path: Path, text: str, code: str, *, timeout: float = 60, extra_env: dict | None = None):
    argv = launch_argv(python=Path(sys.executable), script=script(tmp_path, text), timeout=timeout,
                       argv=[sys.executable, "-c", code])
    env = {**os.environ, "PYTHONPATH": str(ADDON), **launch_env(), **(extra_env or {})}
    return subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_exports_are_captured_and_unchanged_variables_are_not(tmp_path):
    path = script(tmp_path, 'export NEW=one\nexport KEPT="$KEPT"\nexport CHANGED=after\nLOCAL=x\necho hello\necho oops >&2\n')
    result = run_script(path, env={"PATH": os.environ["PATH"], "KEPT": "k", "CHANGED": "before"}, timeout=60, cwd=tmp_path)
    assert result.ok and result.returncode == 0 and not result.timed_out
    assert result.exports == {"NEW": "one", "CHANGED": "after"}
    assert "hello" in result.output and "oops" in result.output


def test_a_script_ending_with_exit_0_still_reports_its_exports(tmp_path):
    path = script(tmp_path, "export A='with spaces\nand a newline'\nexit 0\necho never\n")
    result = run_script(path, env={"PATH": os.environ["PATH"]}, timeout=60, cwd=tmp_path)
    assert result.ok
    assert result.exports == {"A": "with spaces\nand a newline"}
    assert "never" not in result.output


def test_a_failing_script_reports_its_exit_code(tmp_path):
    path = script(tmp_path, "echo about to fail\nexit 7\n")
    result = run_script(path, env={"PATH": os.environ["PATH"]}, timeout=60, cwd=tmp_path)
    assert result.returncode == 7 and not result.ok
    assert "about to fail" in result.output


def test_a_hanging_script_is_killed_at_the_timeout_with_its_children(tmp_path):
    path = script(tmp_path, "sleep 1000 &\necho $! > child.pid\necho started\nsleep 1000\n")
    result = run_script(path, env={"PATH": os.environ["PATH"]}, timeout=2, cwd=tmp_path)
    assert result.timed_out and not result.ok
    assert result.exports == {}
    assert "started" in result.output
    assert gone(int((tmp_path / "child.pid").read_text()))


def test_nothing_a_finished_script_started_outlives_it(tmp_path):
    # the child keeps stdout open: output goes to a file, so this does not wait for it
    path = script(tmp_path, "sleep 1000 &\necho $! > child.pid\nexport DONE=1\n")
    result = run_script(path, env={"PATH": os.environ["PATH"]}, timeout=60, cwd=tmp_path)
    assert result.ok and result.exports == {"DONE": "1"}
    assert gone(int((tmp_path / "child.pid").read_text()))


def test_launch_execs_argv_with_the_exports(tmp_path):
    code = "import os; print(os.environ['FROM_SCRIPT'], os.environ['PATH'].split(':')[0])"
    done = launch(tmp_path, 'echo preparing\nexport FROM_SCRIPT=yes\nexport PATH="/opt/extra:$PATH"\n', code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["yes", "/opt/extra"]
    assert "preparing" in done.stderr and "preparing" not in done.stdout


def test_launch_keeps_the_pid_it_was_started_with(tmp_path):
    argv = launch_argv(python=Path(sys.executable), script=script(tmp_path, "export X=1\n"), timeout=60,
                       argv=[sys.executable, "-c", "import os; print(os.getpid())"])
    env = {**os.environ, "PYTHONPATH": str(ADDON), **launch_env()}
    process = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0
    assert int(out) == process.pid


def test_reserved_variables_are_reset_with_a_warning(tmp_path):
    code = ("import os; e = os.environ; "
            "print(e['AIRFLOW__CORE__EXECUTOR'], e.get('AIRFLOW__CORE__FERNET_KEY_CMD'), e['OTHER'])")
    done = launch(
        tmp_path,
        "export AIRFLOW__CORE__EXECUTOR=SequentialExecutor\nexport AIRFLOW__CORE__FERNET_KEY_CMD='cat key'\nexport OTHER=ok\n",
        code, extra_env={"AIRFLOW__CORE__EXECUTOR": "LocalExecutor"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["LocalExecutor", "None", "ok"]
    assert "hangar: startup script set reserved variable AIRFLOW__CORE__EXECUTOR; reset to the managed value" in done.stderr
    assert "reserved variable AIRFLOW__CORE__FERNET_KEY_CMD" in done.stderr
    assert "OTHER" not in done.stderr


def test_reserved_names_may_also_be_given_on_the_command_line(tmp_path):
    argv = [sys.executable, "-m", "hangar_airflow.launch", "--script", str(script(tmp_path, "export MINE=1\n")),
            "--timeout", "60", "--reserved", "MINE", "--", sys.executable, "-c", "import os; print(os.environ.get('MINE'))"]
    env = {k: v for k, v in os.environ.items() if k != "HANGAR_STARTUP_RESERVED"}
    done = subprocess.run(argv, env={**env, "PYTHONPATH": str(ADDON)}, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "None"
    assert "reserved variable MINE" in done.stderr


def test_launch_stops_when_the_script_fails(tmp_path):
    done = launch(tmp_path, "echo cannot install the driver >&2\nexit 3\n", "print('component started')")
    assert done.returncode == 3
    assert "component started" not in done.stdout
    assert "cannot install the driver" in done.stderr
    assert "hangar: startup script exited with code 3" in done.stderr


def test_launch_stops_when_the_script_hangs(tmp_path):
    done = launch(tmp_path, "sleep 1000 &\necho $! > child.pid\nsleep 1000\n", "print('component started')", timeout=2)
    assert done.returncode != 0
    assert "component started" not in done.stdout
    assert "hangar: startup script did not finish within 2 s" in done.stderr
    assert gone(int((tmp_path / "child.pid").read_text()))


@pytest.mark.parametrize("text", ["", "\n  \n"])
def test_an_empty_script_is_not_run(tmp_path, text):
    done = launch(tmp_path, text, "print('component started')")
    assert done.returncode == 0 and done.stdout.strip() == "component started"


def test_a_missing_script_is_not_run(tmp_path):
    argv = launch_argv(python=Path(sys.executable), script=tmp_path / "absent.sh", timeout=60,
                       argv=[sys.executable, "-c", "print('component started')"])
    done = subprocess.run(argv, env={**os.environ, "PYTHONPATH": str(ADDON)}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "component started"


def test_reserved_variables_follow_the_owned_keys():
    assert {"AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CORE__LOAD_EXAMPLES", "AIRFLOW__CORE__FERNET_KEY",
            "AIRFLOW__CORE__FERNET_KEY_CMD", "AIRFLOW__CORE__FERNET_KEY_SECRET",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW_HOME", "AIRFLOW_CONFIG"} <= RESERVED_VARIABLES
    assert not {"PATH", "PYTHONPATH"} & RESERVED_VARIABLES
    assert set(launch_env()["HANGAR_STARTUP_RESERVED"].split(",")) == RESERVED_VARIABLES
