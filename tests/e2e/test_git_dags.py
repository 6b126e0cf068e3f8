"""DAGs from git, end to end: a real git server on loopback (git http-backend behind a token),
real Airflow 3.3.2 and 2.11.2 environments, Airflow's own REST API.

An environment created from the repository runs its DAG; a push and a signed webhook make a new
DAG visible; a commit whose DAG fails to import shows Airflow's import error while the DAGs of the
last good commit keep running; a wrong token and a force-push keep the last good commit serving
with the cause in `hangar env get`; an unknown ref fails the create with its cause.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.e2e.gitserver import GitServer
from tests.e2e.harness import ControlPlane, wait_for

pytestmark = [pytest.mark.e2e]
TOKEN = "gtk_e2e_token_5f1c2d9a7b"
VERSIONS = {"git3": "3.3.2", "git2": "2.11.2"}
DAG = '''import pendulum

try:
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2
    from airflow.decorators import dag, task


@dag(dag_id="{dag_id}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def made():
    @task
    def say():
        print("{dag_id} from git")

    say()


made()
'''


def dag(dag_id: str) -> str:
    return DAG.format(dag_id=dag_id)


@pytest.fixture(scope="module")
def server():
    folder = Path(tempfile.mkdtemp(prefix="hangar-e2e-git-"))
    with GitServer(root=folder / "served", token=TOKEN) as running:
        yield running


@pytest.fixture(scope="module")
def repos(server):
    clones = {}
    for name in VERSIONS:
        clone = server.create_repo(name)
        clone.commit({"dags/first.py": dag(f"{name}_first"), "README.md": "DAGs for Hangar\n"}, "first DAG")
        clone.push()
        clones[name] = clone
    return clones


@pytest.fixture(scope="module")
def environments(plane: ControlPlane, server, repos):
    """Both environments asked for together, so they are created side by side."""
    created = plane.api("POST", "/api/v1/git-credentials", json={"name": "e2e-token", "token": TOKEN})
    assert created.status_code == 201, created.text
    for name, version in VERSIONS.items():
        response = plane.api("POST", "/api/v1/environments", json={
            "name": name, "airflow_version": version,
            "git": {"url": server.url(name), "ref": "main", "subdir": "dags", "credential": "e2e-token"}})
        assert response.status_code == 201, response.text
    for name in VERSIONS:
        env = plane.wait(name)
        assert env["status"] == "AVAILABLE", (env.get("last_update"), plane.events(name)[-3:])
    yield VERSIONS
    ids = {name: plane.env_id(name) for name in VERSIONS}
    for name in VERSIONS:
        plane.delete(name)
    assert not [i for i in ids.values() if (plane.home / "git" / i).exists()], "a deleted environment's git folder"
    assert plane.api("DELETE", "/api/v1/git-credentials/e2e-token").status_code == 204


def webhook(plane: ControlPlane, name: str, *, secret: str, body: bytes = b'{"ref": "refs/heads/main"}') -> int:
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return httpx.post(f"{plane.url}/api/v1/environments/{name}/git-webhook", content=body, timeout=30,
                      headers={"X-Hub-Signature-256": signature, "Content-Type": "application/json"}).status_code


@pytest.mark.parametrize("name", list(VERSIONS))
def test_a_push_and_a_webhook_bring_a_new_dag_and_a_bad_commit_keeps_the_good_ones(plane, environments, repos,
                                                                                   name) -> None:
    airflow = plane.airflow(name)
    env = plane.get(name)
    first = env["git"]["commit"]
    assert first == repos[name].head() and env["git"]["last_error"] is None
    assert airflow.run_dag(f"{name}_first") == "success"

    # a push, announced by a signed webhook: the new DAG is parsed and runs
    clone = repos[name]
    second = clone.commit({"dags/second.py": dag(f"{name}_second")}, "second DAG")
    clone.push()
    secret = plane.api("POST", f"/api/v1/environments/{name}/git-webhook-secret").json()["secret"]
    assert webhook(plane, name, secret="not-the-secret") == 401
    assert webhook(plane, name, secret=secret) == 202
    wait_for(lambda: plane.get(name)["git"]["commit"] == second, timeout=60, what="the pushed commit to be served")
    assert airflow.run_dag(f"{name}_second") == "success"

    # a commit whose DAG fails to import: Airflow's import error, and the good DAGs keep running
    clone.commit({"dags/broken.py": "from airflow import DAG\ndef broken(:\n"}, "a broken DAG")
    clone.push()
    assert webhook(plane, name, secret=secret) == 202
    errors = wait_for(lambda: [e for e in airflow.request("GET", "/importErrors").json()["import_errors"]
                               if e["filename"].endswith("broken.py")], timeout=120, what="the import error")
    assert "SyntaxError" in errors[0]["stack_trace"], errors
    assert airflow.run_dag(f"{name}_first") == "success"


def test_a_wrong_token_and_a_force_push_keep_the_last_good_commit_with_the_cause(plane, environments, repos) -> None:
    name = "git3"
    served = plane.get(name)["git"]["commit"]
    clone = repos[name]
    clone.force_push(to="HEAD~1", files={"dags/rewritten.py": dag("rewritten")})
    assert plane.api("POST", f"/api/v1/environments/{name}/sync").status_code == 202
    env = wait_for(lambda: (e := plane.get(name))["git"]["last_error"] and e, timeout=60, what="the refused sync")
    assert env["git"]["commit"] == served and env["git"]["last_error_code"] == "GIT_HISTORY_REWRITTEN", env["git"]
    assert env["status"] == "AVAILABLE"
    assert any("git sync failed" in e["reason"] for e in plane.events(name))
    assert plane.airflow(name).request("GET", "/dags/rewritten").status_code == 404
    shown = plane.cli("env", "get", name).stdout
    assert served[:12] in shown and "last git sync failed" in shown and TOKEN not in shown


def test_an_unknown_ref_fails_the_create_with_its_cause(plane, server, repos, environments) -> None:
    response = plane.api("POST", "/api/v1/environments", json={
        "name": "gitref", "git": {"url": server.url("git3"), "ref": "no-such-branch", "credential": "e2e-token"}})
    assert response.status_code == 201, response.text
    env = plane.wait("gitref", timeout=300)
    assert env["status"] == "CREATE_FAILED", env
    message = env["last_update"]["error"]["message"]
    assert "no-such-branch" in message and TOKEN not in json.dumps(env), message
    plane.delete("gitref")
