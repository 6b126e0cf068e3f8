"""In-place upgrades and downgrades of real metadata databases with real Airflow runtimes.

Each test records a real DAG run with `airflow dags test` on one version, moves the
database with hangar.runtime.upgrade, and checks with the other version's own CLI
and with SQL that the run and its task instances are still there.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import psycopg2
import pytest

from hangar.errors import MetadataDatabaseFailed
from hangar.runtime import metadb
from hangar.runtime.embedded_postgres import EmbeddedPostgres
from hangar.runtime.upgrade import downgrade, migrate, plan_upgrade
from hangar.runtime.venvs import Runtime, ensure_runtime
from tests.e2e.harness import runtime_python, shared_runtimes_dir

pytestmark = pytest.mark.e2e

DAG_ID = "hangar_upgrade_probe"
PROBE = '''
import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

with DAG("hangar_upgrade_probe", start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), schedule=None, catchup=False):
    @task
    def first():
        return 21

    @task
    def second(value):
        return value * 2

    second(first())
'''


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    # not under pytest's basetemp (0700): the embedded PostgreSQL runs as its own user under root
    folder = Path(tempfile.mkdtemp(prefix="hangar-upgrade-"))
    folder.chmod(0o755)
    (folder / "dags").mkdir()
    (folder / "dags" / f"{DAG_ID}.py").write_text(PROBE)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres(scratch: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(scratch / "pgdata")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def runtimes(scratch: Path) -> dict[str, Runtime]:
    return {
        version: ensure_runtime(root=shared_runtimes_dir(), python=runtime_python(), airflow_version=version,
                                requirements=None, progress=lambda _: None)
        for version in ("2.11.2", "3.2.2", "3.3.2")
    }


def database(postgres: EmbeddedPostgres, name: str, *, runtime: Runtime) -> str:
    """A fresh database migrated by `runtime`, set up the way Hangar sets up a template."""
    postgres.drop(name)
    with postgres.admin() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    url = postgres.url(name)
    metadb.migrate(runtime=runtime, url=url)
    if runtime.major == 2:
        metadb.create_role_users(runtime=runtime, url=url)
    return url


def airflow(runtime: Runtime, url: str, dags: Path, *args: str, check: bool = True) -> str:
    """Run an `airflow` command the way a component would, with the probe's DAG folder."""
    with tempfile.TemporaryDirectory() as home:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            **metadb.airflow_db_env(url),
        }
        result = subprocess.run([str(runtime.airflow), *args], env=env, capture_output=True, text=True, timeout=600)
    command = f"airflow {' '.join(args)} of {runtime.airflow_version}"
    assert result.returncode == 0 or not check, f"{command}:\n{result.stderr[-3000:]}"
    return result.stdout


def rows(postgres: EmbeddedPostgres, name: str, query: str) -> set[tuple]:
    connection = psycopg2.connect(host=postgres.socket_dir, user="postgres", dbname=name)
    try:
        with connection.cursor() as cursor:
            cursor.execute(query)
            return set(cursor.fetchall())
    finally:
        connection.close()


def history(postgres: EmbeddedPostgres, name: str) -> tuple[set[tuple], set[tuple]]:
    runs = rows(postgres, name, "SELECT dag_id, run_id, state FROM dag_run")
    tis = rows(postgres, name, "SELECT dag_id, run_id, task_id, map_index, state FROM task_instance")
    return runs, tis


def revision(postgres: EmbeddedPostgres, name: str) -> str:
    (only,) = rows(postgres, name, "SELECT version_num FROM alembic_version")
    return only[0]


def record_run(
    postgres: EmbeddedPostgres, name: str, *, runtime: Runtime, dags: Path, succeeds: bool = True
) -> tuple[set, set]:
    """One more run of the probe DAG, with its two task instances, in the database `name`."""
    before = history(postgres, name)
    airflow(runtime, postgres.url(name), dags, "dags", "test", DAG_ID, check=succeeds)
    after = history(postgres, name)
    new_runs, new_tis = after[0] - before[0], after[1] - before[1]
    assert len(new_runs) == 1 and len(new_tis) == 2
    if succeeds:
        assert {state for *_, state in new_runs | new_tis} == {"success"}
    return after


def test_airflow_2_11_database_upgrades_to_3_3_and_back(postgres, runtimes, scratch):
    old, new, dags = runtimes["2.11.2"], runtimes["3.3.2"], scratch / "dags"
    url = database(postgres, "upgrade_2_to_3", runtime=old)
    # what a running Airflow 2 environment has: the DAG and its serialized form, a finished run
    airflow(old, url, dags, "dags", "reserialize")
    runs, tis = record_run(postgres, "upgrade_2_to_3", runtime=old, dags=dags)
    assert plan_upgrade(current="2.11.2", target="3.3.2", allow_downgrade=False).kind == "major"

    said: list[str] = []
    migrate(old=old, new=new, url=url, progress=said.append)

    assert said and "2.11.2" in said[0] and "3.3.2" in said[0]
    assert history(postgres, "upgrade_2_to_3") == (runs, tis)
    (run_id,) = [run for _, run, _ in runs]
    assert run_id in airflow(new, url, dags, "dags", "list-runs", DAG_ID, "-o", "json")
    # the upgraded database runs new work with Airflow 3
    runs, tis = record_run(postgres, "upgrade_2_to_3", runtime=new, dags=dags)

    # and, since it came up from Airflow 2 with its FAB tables, it can go back
    downgrade(old=old, new=new, url=url, progress=said.append)
    assert "downgraded" in said[-1]
    assert history(postgres, "upgrade_2_to_3") == (runs, tis)
    listed = airflow(old, url, dags, "dags", "list-runs", "-d", DAG_ID, "-o", "json")
    assert all(run in listed for _, run, _ in runs)
    users = airflow(old, url, dags, "users", "list", "-o", "json")
    assert all(name in users for name in metadb.ROLE_USERS)
    record_run(postgres, "upgrade_2_to_3", runtime=old, dags=dags)


def test_airflow_3_2_database_upgrades_to_3_3_and_downgrades_back(postgres, runtimes, scratch):
    old, new, dags = runtimes["3.2.2"], runtimes["3.3.2"], scratch / "dags"
    url = database(postgres, "upgrade_3_2_to_3_3", runtime=old)
    # 3.2.2's `airflow dags test` runs tasks through an in-process execution API that fails there
    # (KeyError: 'svcs_registry'; the same packages serve 3.3.2's fine, and 3.2.2 environments run
    # tasks through their api-server, see test_upgrades.py); the failed run and its task instances
    # are recorded all the same, and must survive
    runs, tis = record_run(postgres, "upgrade_3_2_to_3_3", runtime=old, dags=dags, succeeds=False)
    before = revision(postgres, "upgrade_3_2_to_3_3")

    migrate(old=old, new=new, url=url, progress=lambda _: None)

    assert revision(postgres, "upgrade_3_2_to_3_3") != before
    assert history(postgres, "upgrade_3_2_to_3_3") == (runs, tis)
    (run_id,) = [run for _, run, _ in runs]
    assert run_id in airflow(new, url, dags, "dags", "list-runs", DAG_ID, "-o", "json")
    runs, tis = record_run(postgres, "upgrade_3_2_to_3_3", runtime=new, dags=dags)

    assert plan_upgrade(current="3.3.2", target="3.2.2", allow_downgrade=True).kind == "downgrade"
    downgrade(old=old, new=new, url=url, progress=lambda _: None)

    assert revision(postgres, "upgrade_3_2_to_3_3") == before
    assert history(postgres, "upgrade_3_2_to_3_3") == (runs, tis)
    listed = airflow(old, url, dags, "dags", "list-runs", DAG_ID, "-o", "json")
    assert all(run in listed for _, run, _ in runs)


def test_a_database_created_on_airflow_3_cannot_go_to_2_and_is_left_unchanged(postgres, runtimes, scratch):
    old, new = runtimes["2.11.2"], runtimes["3.3.2"]
    url = database(postgres, "native_3", runtime=new)
    runs, tis = record_run(postgres, "native_3", runtime=new, dags=scratch / "dags")
    before = revision(postgres, "native_3")

    with pytest.raises(MetadataDatabaseFailed, match="created on Airflow 3") as caught:
        downgrade(old=old, new=new, url=url, progress=lambda _: None)

    assert "apache-airflow-provider-fab" in caught.value.message
    assert revision(postgres, "native_3") == before
    assert history(postgres, "native_3") == (runs, tis)


def test_a_failed_migration_names_both_versions_and_shows_airflow_output(postgres, runtimes):
    old, new = runtimes["3.2.2"], runtimes["3.3.2"]
    missing = postgres.url("no_such_database")

    with pytest.raises(MetadataDatabaseFailed) as caught:
        migrate(old=old, new=new, url=missing, progress=lambda _: None)

    message = caught.value.message
    assert "3.2.2" in message and "3.3.2" in message
    assert "no_such_database" in message
