"""`hangar worker join` from another host: a network namespace (RemoteHost) that reaches the
control plane, the environment's API server, Redis and PostgreSQL only through forwarders on its
veth pair, and has no package index (UV_OFFLINE=1, the runtime comes from uv's cache).

It builds the runtime, heartbeats as ACTIVE, takes a share of a DAG's tasks (Airflow records its
hostname on them), receives a DAG added later, and when its token is revoked while it runs tasks,
lets them finish (warm shutdown) and exits 0. A bad token ends a join at once; an environment on
the embedded database is refused with the reason.

Tasks hold until the test writes their release file, once one runs on the joined host (and,
for the revocation, once the host has begun its warm shutdown), not for a time."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.celery import (
    CELERY_DAGS, REDIS, ReleaseFile, control_plane, dispose, failures, require_service, task_states, trigger_held,
    wait_until,
)
from tests.e2e.netns import RemoteHost, forward, require_netns

pytestmark = pytest.mark.e2e

POSTGRES = ("127.0.0.1", 5432)
# added while the host runs: it must reach the host, and its tasks, held until the test writes the
# release file named in the run's conf, outlast a revocation (retries 0: a killed one fails)
SLOW_DAG = """
import os
import socket
import time
from datetime import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime(2024, 1, 1), catchup=False, default_args={"retries": 0})
def slow_where():
    @task
    def where(i: int, **context) -> str:
        release = context["dag_run"].conf["release"]
        deadline = time.monotonic() + 900
        while not os.path.exists(release):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{release} did not appear")
            time.sleep(0.5)
        return socket.gethostname()

    where.expand(i=list(range(10)))


slow_where()
"""


@pytest.fixture(scope="module")
def plane():
    require_service("127.0.0.1", 6379, "Redis")
    require_service(*POSTGRES, "PostgreSQL")
    require_netns()
    plane = control_plane(REDIS, cooldown=30, port_offset=17)
    yield plane
    dispose(plane)


@pytest.fixture(scope="module")
def database():
    """A fresh database on the machine's PostgreSQL: the environment's metadata, which the host must reach."""
    import psycopg2

    name = f"hangar_join_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(host=POSTGRES[0], port=POSTGRES[1], user="postgres", dbname="postgres", connect_timeout=5)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    yield f"postgresql://postgres@{POSTGRES[0]}:{POSTGRES[1]}/{name}"
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


def join_argv(url: str, home: Path, *extra: str, name: str = "remote") -> list[str]:
    return [sys.executable, "-m", "hangar.cli.main", "worker", "join", "--url", url, "--environment", name,
            "--home", str(home), *extra]


def host_env(token: str) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith("HANGAR_")}
    return {**kept, "HANGAR_WORKER_TOKEN": token, "UV_OFFLINE": "1"}


def hosts(plane) -> list[dict]:
    return json.loads(plane.cli("worker", "list", "remote", "--json").stdout)


def test_an_environment_on_the_embedded_database_is_refused_with_the_reason(plane):
    # first in the module: the environment is refused before its create has finished
    plane.cli("env", "create", "embedded", "--dags", str(CELERY_DAGS), "--executor", "celery")
    try:
        token = json.loads(plane.cli("worker", "token", "create", "embedded", "--json").stdout)["token"]
        answer = httpx.get(f"{plane.url}/api/v1/environments/embedded/worker-bundle",
                           headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert answer.status_code == 409
        error = answer.json()["error"]
        assert error["code"] == "REMOTE_WORKERS_NEED_REACHABLE_DATABASE"
        assert "the embedded metadata database is reachable only on the control plane's machine" in error["message"]
        home = Path(tempfile.mkdtemp(prefix="hangar-e2e-join-"))
        try:
            refused = subprocess.run(join_argv(plane.url, home, name="embedded"), env=host_env(token),
                                     capture_output=True, text=True, timeout=120)
        finally:
            shutil.rmtree(home, ignore_errors=True)
        assert refused.returncode == 1
        assert refused.stderr.startswith("error: environment 'embedded' cannot take workers from other hosts")
        assert len(refused.stderr.strip().splitlines()) == 1
    finally:
        plane.discard("embedded")  # its create goes on meanwhile; it is deleted while the next test runs


def test_a_host_joins_runs_tasks_follows_dags_and_leaves_when_revoked(plane, database, tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(CELERY_DAGS / "where_am_i.py", dags)
    # the environment's own worker and the host's both take tasks: room for all ten at once
    env = plane.create("remote", dags, "--executor", "celery", "--min-workers", "1", "--max-workers", "1",
                       "--metadata-db-url", database, "--config", "core.parallelism=16",
                       "--config", "core.max_active_tasks_per_dag=16")
    assert env["status"] == "AVAILABLE", env
    home = Path(tempfile.mkdtemp(prefix="hangar-e2e-join-"))
    home.chmod(0o755)  # the namespace's commands run as this user too, but keep it like a real home
    try:
        created = json.loads(plane.cli("worker", "token", "create", "remote", "--label", "namespace", "--json").stdout)
        web_port = urlsplit(env["webserver_url"]).port
        with ExitStack() as stack:
            host = stack.enter_context(RemoteHost())
            hop = stack.enter_context(forward(listen=(host.host_address, 0), target=("127.0.0.1", plane.port)))
            for port in (web_port, 6379, POSTGRES[1]):  # the execution API, the broker, the metadata database
                stack.enter_context(forward(listen=(host.host_address, port), target=("127.0.0.1", port)))
            url = f"http://{host.host_address}:{hop.port}"

            bad = host.run(join_argv(url, home / "bad"), env=host_env("hwt_not-a-token"), timeout=120)
            assert bad.returncode == 1, bad
            assert bad.stderr.strip() == "error: a valid worker token for environment 'remote' is required " \
                                         "(Authorization: Bearer hwt_..., from `hangar worker token create`)"
            assert not (home / "bad" / "runtimes").exists() or not any((home / "bad" / "runtimes").iterdir())

            output = home / "join.out"
            with open(output, "wb") as sink:
                joined = host.popen(join_argv(url, home / "h", "--concurrency", "4", "--refresh-seconds", "5"),
                                    env=host_env(created["token"]), stdout=sink, stderr=subprocess.STDOUT)
            text = lambda: output.read_text(errors="replace")  # noqa: E731

            def ready() -> bool:
                assert joined.poll() is None, f"the join exited {joined.returncode}:\n{text()}"
                return "is ready: it takes tasks from" in text()

            wait_until(ready, timeout=900, interval=2, what="the joined host's worker to be ready")
            # as on the control plane, Celery's worker_ready wrote the worker's ready file, with its pid
            run = home / "h" / "environments" / "remote" / "run"
            assert (run / "worker-1.ready").read_text().strip() == \
                str(json.loads((run / "worker-1.pid").read_text())["pid"])
            (listed,) = hosts(plane)
            assert (listed["hostname"], listed["status"], listed["state"], listed["concurrency"]) == (
                host.hostname, "ACTIVE", "RUNNING", 4), listed
            assert listed["last_heartbeat_at"] and listed["workers"] == [
                f"{host.hostname}-1@{listed['workers'][0].split('@')[1]}"]
            assert listed["airflow_version"] == env["airflow_version"] and listed["runtime_key"]

            airflow = plane.airflow("remote")

            # a joined host's tasks record the address the control plane reaches it by as their
            # hostname, so that the api-server can fetch their logs from the host's log server
            def running_on_the_host(dag_id: str, run_id: str) -> bool:
                return any(t["state"] == "running" and t["hostname"] == host.address
                           for t in task_states(airflow, dag_id, run_id))

            with ReleaseFile() as release:
                run_id = trigger_held(airflow, "where_am_i", release)
                wait_until(lambda: running_on_the_host("where_am_i", run_id), timeout=600, interval=1,
                           what="a where_am_i task running on the joined host")
                release.write()
                state = airflow.wait_for_run("where_am_i", run_id, timeout=600)
                assert state == "success", failures(airflow, "where_am_i", run_id)
            states = task_states(airflow, "where_am_i", run_id)
            assert len(states) == 10 and {t["state"] for t in states} == {"success"}, states
            ran_on = {t["hostname"] for t in states}
            assert host.address in ran_on, f"no task ran on the joined host {host.address}: {ran_on}"
            remote_task = next(t for t in states if t["hostname"] == host.address)
            returned = airflow.request("GET", f"/dags/where_am_i/dagRuns/{run_id}/taskInstances/where/xcomEntries/"
                                              f"return_value", params={"map_index": remote_task["map_index"]})
            assert returned.status_code == 200 and returned.json()["value"] in (host.hostname, f'"{host.hostname}"')
            # its log stayed on the host: the api-server fetches it from the host's log server
            remote_log = plane.cli("env", "task-logs", "remote", "where_am_i", run_id, "where",
                                   "--map-index", str(remote_task["map_index"])).stdout
            assert f"http://{host.address}:" in remote_log and "task_id=where" in remote_log, remote_log[-2000:]

            # a DAG added on the control plane reaches the host within a refresh
            (dags / "slow_where.py").write_text(SLOW_DAG)
            live = home / "h" / "environments" / "remote" / "dags-current"
            wait_until(lambda: (live / "slow_where.py").exists(), timeout=180, interval=2,
                       what="the new DAG file on the joined host")
            assert (live / "where_am_i.py").read_bytes() == (dags / "where_am_i.py").read_bytes()

            # revoked while it runs tasks: they finish (warm shutdown), then the join exits 0 by itself
            with ReleaseFile() as release:
                slow_run = trigger_held(airflow, "slow_where", release)
                wait_until(lambda: running_on_the_host("slow_where", slow_run), timeout=600, interval=1,
                           what="a slow task running on the joined host")
                plane.cli("worker", "token", "revoke", "remote", created["id"])
                wait_until(lambda: "leaves, the worker token was revoked: warm shutdown" in text(), timeout=120,
                           what="the joined host to begin its warm shutdown")
                assert joined.poll() is None and running_on_the_host("slow_where", slow_run), text()
                release.write()
                assert joined.wait(timeout=600) == 0, text()
                assert "has finished its tasks and exited" in text()
                assert host.pids() == [], "processes left in the namespace"
                (listed,) = hosts(plane)
                assert listed["status"] == "REVOKED"
                state = airflow.wait_for_run("slow_where", slow_run, timeout=600)
                assert state == "success", failures(airflow, "slow_where", slow_run)
            slow = task_states(airflow, "slow_where", slow_run)
            assert {t["state"] for t in slow} == {"success"}, [(t["hostname"], t["state"]) for t in slow]
            assert host.address in {t["hostname"] for t in slow}
            print(text())  # what `hangar worker join` showed, for -s and failure reports

        secret_texts = [plane.cli("audit", "--json").stdout, plane.log.read_text(errors="replace"), text()]
        assert all(created["token"] not in t for t in secret_texts)
    finally:
        plane.cli("env", "delete", "remote", "--wait", check=False)
        shutil.rmtree(home, ignore_errors=True)
