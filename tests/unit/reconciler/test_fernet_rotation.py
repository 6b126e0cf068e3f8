"""The pieces of fernet rotation that need no Airflow: the launch plan's MultiFernet
keys while a rotation is under way, how `airflow rotate-fernet-key` is run (a stand-in
executable records what it got), and what a failed rotation leaves behind.
The whole rotation against real Airflow is tests/e2e/test_key_rotation.py."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from hangar.backend.plan import LaunchPlan
from hangar.context import Context
from hangar.domain import environments, queries
from hangar.schemas.spec import EnvironmentCreate, Spec
from hangar.domain.status import Status
from hangar.domain.secrets import FERNET_NEXT
from hangar.reconciler.launching import launch_plan
from hangar.reconciler.operations.rotate_fernet import FernetRotationFailed, rotate_fernet_key
from hangar.reconciler.reconciler import Reconciler
from hangar.reconciler.registry import operation_for
from hangar.reconciler.staging import Target
from hangar.schemas.operations import OperationKind
from hangar.reconciler.queue import Work
from hangar.runtime.airflow_config import EnvironmentLayout, write_cfg
from hangar.runtime.venvs import Runtime
from hangar.store import repository
from hangar.store.models import OperationRow

FERNET = "FERNET-OLD-zq8Yc1mS0nQ0u2wq3nM4Xn6z1X9L8kK7jJ6hH5gG4fE="
NEXT = "FERNET-NEW-aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5zA7bC9d="
DB_URL = "postgresql://hangar:DB-PASSWORD-9x8y7z@127.0.0.1:5432/hangar_env_1"


def fake_airflow(folder: Path, script: str) -> Path:
    """An executable standing in for the runtime's `airflow`."""
    path = folder / "bin" / "airflow"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def plan(tmp_path: Path, airflow: Path, env: dict[str, str]) -> LaunchPlan:
    return LaunchPlan(env_id="e1", major=3, airflow_bin=airflow, env=env, root=tmp_path, web_port=1,
                      start_seconds=1, start_retries=1, stable_seconds=1)


def test_rotate_fernet_key_runs_with_the_components_environment(tmp_path):
    record = tmp_path / "got.json"
    airflow = fake_airflow(tmp_path, f"""python3 -c 'import json, os, sys; json.dump({{"argv": sys.argv[1:], "cwd": os.getcwd(),
"fernet": os.environ["AIRFLOW__CORE__FERNET_KEY"], "db": os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
"home": os.environ["AIRFLOW_HOME"]}}, open("{record}", "w"))' "$@"
""")
    env = {"PATH": os.environ["PATH"], "AIRFLOW__CORE__FERNET_KEY": f"{NEXT},{FERNET}",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": DB_URL, "AIRFLOW_HOME": str(tmp_path)}
    rotate_fernet_key(plan(tmp_path, airflow, env))
    got = json.loads(record.read_text())
    assert got == {"argv": ["rotate-fernet-key"], "cwd": str(tmp_path), "fernet": f"{NEXT},{FERNET}", "db": DB_URL,
                   "home": str(tmp_path)}


def test_a_failed_rotate_fernet_key_names_the_error_without_secrets(tmp_path):
    airflow = fake_airflow(tmp_path, """echo "cannot decrypt with $AIRFLOW__CORE__FERNET_KEY" >&2
echo "connecting to $AIRFLOW__DATABASE__SQL_ALCHEMY_CONN failed: InvalidToken" >&2
exit 3
""")
    env = {"PATH": os.environ["PATH"], "AIRFLOW__CORE__FERNET_KEY": f"{NEXT},{FERNET}",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": DB_URL}
    with pytest.raises(FernetRotationFailed) as caught:
        rotate_fernet_key(plan(tmp_path, airflow, env))
    message = caught.value.message
    assert "exit 3" in message and "InvalidToken" in message
    for secret in (NEXT, FERNET, DB_URL, "DB-PASSWORD-9x8y7z"):
        assert secret not in message


def test_a_hanging_rotate_fernet_key_fails(tmp_path):
    airflow = fake_airflow(tmp_path, "sleep 30\n")
    with pytest.raises(FernetRotationFailed, match="did not finish"):
        rotate_fernet_key(plan(tmp_path, airflow, {"PATH": os.environ["PATH"]}), timeout=0.5)


def _environment(ctx: Context, tmp_path: Path) -> tuple[str, int]:
    dags = tmp_path / "dags"
    dags.mkdir()
    environments.create_environment(ctx, request=EnvironmentCreate(name="fern", dags=str(dags)))
    with ctx.store.session() as session:
        env = repository.get_live(session, "fern")
        env.status, env.running_revision, env.ports = Status.AVAILABLE, 1, {"web": 1, "worker_logs": 2, "trigger_logs": 3}
        repository.close_operations(session, env.id, step="done")  # as the create's end does
        env_id = env.id
    submitted: list[tuple[str, int]] = []
    ctx.submit = lambda *args: submitted.append(args)
    environments.rotate_fernet(ctx, name="fern")
    return env_id, submitted[0][1]


def _target(ctx: Context, env_id: str, tmp_path: Path) -> Target:
    layout = EnvironmentLayout(root=tmp_path / "env")
    layout.root.mkdir()
    spec = Spec(dags=str(tmp_path / "dags"), airflow_version="3.3.2")
    ports = {"web": 1, "worker_logs": 2, "trigger_logs": 3}
    write_cfg(spec=spec, layout=layout, ports=ports)
    runtime = Runtime(key="k", path=tmp_path / "runtime", airflow_version="3.3.2")
    return Target(env_id=env_id, name="fern", revision=1, spec=spec, runtime=runtime, layout=layout, ports=ports,
                  db_url=DB_URL, dags=str(spec.dags), plugins_dir=layout.plugins, startup_script=None,
                  cfg_text=layout.cfg.read_text())


def test_while_a_new_key_is_pending_components_get_new_then_old(ctx, tmp_path):
    env_id, _ = _environment(ctx, tmp_path)
    target = _target(ctx, env_id, tmp_path)
    with ctx.store.session() as session:
        old = repository.get_secrets(session, ctx.envelope, env_id=env_id)["fernet_key"]
    assert launch_plan(ctx, target).env["AIRFLOW__CORE__FERNET_KEY"] == old
    with ctx.store.session() as session:
        repository.put_secret(session, ctx.envelope, env_id=env_id, name=FERNET_NEXT, value=NEXT)
    assert launch_plan(ctx, target).env["AIRFLOW__CORE__FERNET_KEY"] == f"{NEXT},{old}"


def test_a_failed_rotation_is_update_failed_with_the_error_and_keeps_the_old_key(ctx, tmp_path):
    env_id, operation_id = _environment(ctx, tmp_path)
    with ctx.store.session() as session:
        before = repository.get_secrets(session, ctx.envelope, env_id=env_id)
    Reconciler(ctx).fail(Work(env_id=env_id, operation_id=operation_id),
                         FernetRotationFailed("`airflow rotate-fernet-key` failed (exit 1)"))
    env = queries.get_environment(ctx, name="fern")
    assert env.status == "UPDATE_FAILED"
    assert env.last_update.status == "FAILED"
    assert (env.last_update.error.code, env.last_update.error.message) == (
        "FERNET_ROTATION_FAILED", "`airflow rotate-fernet-key` failed (exit 1)")
    with ctx.store.session() as session:
        assert repository.get_secrets(session, ctx.envelope, env_id=env_id)["fernet_key"] == before["fernet_key"]
        assert session.get_one(OperationRow, operation_id).done
    # the environment can be rotated again
    environments.rotate_fernet(ctx, name="fern")


def test_the_reconciler_knows_the_rotation_kind():
    assert operation_for("rotate-fernet").kind == OperationKind.ROTATE_FERNET == "rotate-fernet"
    assert max(len(kind) for kind in OperationKind) <= OperationRow.kind.type.length
