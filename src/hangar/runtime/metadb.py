"""What Hangar does to an Airflow metadata database, wherever it lives (the embedded
PostgreSQL, hangar.runtime.embedded_postgres, or an external one): migrate it with the
runtime's own `airflow`, create Airflow 2's role users, dump and restore an external one,
and read the job and task tables the control plane watches.

Airflow runs here with a fresh AIRFLOW_HOME and none of the caller's AIRFLOW_* variables, so
only the database URL given decides what it migrates.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import psycopg2

from hangar.backend.identity import RunAs
from hangar.errors import MetadataDatabaseFailed, TemporaryError
from hangar.runtime import pg_clients
from hangar.runtime.venvs import Runtime


def airflow_db_env(url: str) -> dict[str, str]:
    return {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url}


def run_airflow(runtime: Runtime, url: str, *args: str, timeout: float = 600,
                run_as: RunAs | None = None) -> subprocess.CompletedProcess:
    """`airflow ARGS` of `runtime` against the database at `url`. With `run_as` (the runtime
    holds an environment's requirements, whose code runs at start-up), as that user, with none of
    the control plane's own variables."""
    with tempfile.TemporaryDirectory(prefix="hangar-airflow-") as home:
        base = os.environ if run_as is None else {k: os.environ[k] for k in _PLAIN_VARS if k in os.environ}
        env = {
            **{k: v for k, v in base.items() if not k.startswith("AIRFLOW")},
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            **airflow_db_env(url),
        }
        if run_as is not None:
            os.chown(home, run_as.uid, run_as.gid)
            env.update(run_as.env(home=Path(home)))
        try:
            return subprocess.run(
                [str(runtime.airflow), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=home,
                **(run_as.popen() if run_as is not None else {}),
            )
        except subprocess.TimeoutExpired as exc:
            raise MetadataDatabaseFailed(f"`airflow {' '.join(args)}` did not finish in {timeout:.0f} s") from exc


_PLAIN_VARS = ("PATH", "LANG", "LC_ALL", "TZ")
# the user Airflow migrates a runtime's template database as, when environments are isolated:
# the runtime holds requirements, whose code runs when Airflow starts
TEMPLATE_USER = RunAs(name="nobody", uid=65534, gid=65534)


def output_tail(result: subprocess.CompletedProcess, lines: int = 10) -> str:
    """The last lines Airflow printed, warnings left out, so the cause is what shows."""
    text = f"{result.stdout or ''}\n{result.stderr or ''}"
    kept = [line for line in text.splitlines() if line.strip() and "Warning:" not in line]
    return "\n".join(kept[-lines:])


def migrate(*, runtime: Runtime, url: str, run_as: RunAs | None = None) -> None:
    result = run_airflow(runtime, url, "db", "migrate", run_as=run_as)
    if result.returncode != 0:
        raise MetadataDatabaseFailed(f"`airflow db migrate` failed (exit {result.returncode}):\n{output_tail(result, 15)}")


ROLE_USERS = {"admin": "Admin", "op": "Op", "user": "User", "viewer": "Viewer"}


def create_role_users(*, runtime: Runtime, url: str, run_as: RunAs | None = None) -> None:
    """Airflow 2's FAB needs a user row to log in as: one per Hangar role.

    Their passwords are random, made by Airflow and never seen (none is on a command line, where
    one starting with "-" was also taken for an option); people get in with Hangar tokens
    (see hangar_airflow), which name the user of their role."""
    # a fresh Airflow 2 database only knows Admin and Public until the roles are synced
    synced = run_airflow(runtime, url, "sync-perm", run_as=run_as)
    if synced.returncode != 0:
        raise MetadataDatabaseFailed(f"`airflow sync-perm` failed:\n{output_tail(synced)}")
    for username, role in ROLE_USERS.items():
        result = run_airflow(
            runtime, url, "users", "create", "--username", username, "--role", role,
            "--email", f"{username}@hangar.invalid", "--firstname", "Hangar", "--lastname", role,
            "--use-random-password", run_as=run_as,
        )
        if result.returncode != 0:
            raise MetadataDatabaseFailed(f"creating the Airflow user {username} failed:\n{output_tail(result)}")


# --- dumps of an external PostgreSQL (metadata_db_url) ---


def dump_url(url: str, path: Path) -> None:
    conninfo, password = pg_clients.conninfo(url)
    pg_clients.run_pg("pg_dump", "-Fc", "--no-owner", "--no-privileges", "-f", str(path), "-d", conninfo,
                      password=password)


def restore_url(url: str, path: Path) -> None:
    """Replace the schema `public` of an external database with the dump at `path`.

    The database itself may not be ours to drop, so its `public` schema is emptied
    instead (tables a later Airflow added go too), then pg_restore fills it."""
    try:
        connection = psycopg2.connect(pg_clients.libpq_url(url))
    except psycopg2.OperationalError as exc:
        reason = pg_clients.redact(str(exc), None)
        raise TemporaryError(f"the external metadata database is not reachable: {reason}") from None
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("DROP SCHEMA IF EXISTS public CASCADE")
            cursor.execute("CREATE SCHEMA public")
    finally:
        connection.close()
    conninfo, password = pg_clients.conninfo(url)
    pg_clients.run_pg("pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
                      "-d", conninfo, str(path), password=password)


# The Airflow job each long-running component records (and heartbeats) once it is past start-up.
COMPONENT_JOBS = {"scheduler": "SchedulerJob", "triggerer": "TriggererJob", "dag-processor": "DagProcessorJob"}


def job_running_since(url: str, *, job_type: str, since: float) -> bool:
    """Whether a component of `job_type` started at or after `since` (epoch seconds) has a
    running job in Airflow's `job` table: it read its configuration and entered its loop."""
    try:
        connection = psycopg2.connect(pg_clients.libpq_url(url), connect_timeout=5)
    except psycopg2.OperationalError:
        return False
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM job WHERE job_type = %s AND state = 'running' AND start_date >= to_timestamp(%s) LIMIT 1",
                (job_type, since),
            )
            return cursor.fetchone() is not None
    except psycopg2.Error:
        return False
    finally:
        connection.close()


# The query the official Airflow Helm chart gives KEDA to scale Celery workers, split in its two
# counts: task instances queued for a worker, and those running on one.
TASK_DEMAND_QUERY = (
    "SELECT count(*) FILTER (WHERE state = 'queued'), count(*) FILTER (WHERE state = 'running') "
    "FROM task_instance WHERE state IN ('queued', 'running')"
)


def task_demand(connection) -> tuple[int, int]:
    """(queued, running) task instances, read on an open psycopg2 connection."""
    with connection.cursor() as cursor:
        cursor.execute(TASK_DEMAND_QUERY)
        queued, running = cursor.fetchone()
    connection.rollback()  # no transaction left open between readings
    return int(queued), int(running)


def close_quietly(connection) -> None:
    """Close a connection that may be broken already (a reading that failed, a database gone)."""
    try:
        connection.close()
    except Exception:
        pass


def connect(url: str, *, timeout: int = 5):
    connection = psycopg2.connect(pg_clients.libpq_url(url), connect_timeout=timeout)
    connection.autocommit = False
    return connection
