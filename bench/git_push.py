"""Push to visible: seconds from a push's webhook call to the new DAG in the environment's
Airflow REST API, median of --runs pushes, on a real control plane and a real Airflow 3.3.2
environment whose DAGs come from a real git server on loopback (git http-backend behind a token,
tests/e2e/gitserver.py). Each push adds one DAG file and calls the webhook with GitHub's
signature; the clock stops when GET /dags/{new dag} answers 200.

The reference is Cloud Composer's bucket sync, not measured here: Google documents that DAG
changes in the environment's bucket take a few minutes to appear.

Run: uv run --extra test python bench/git_push.py --runs 5
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hangar_side  # noqa: E402
from tests.e2e.gitserver import GitServer  # noqa: E402

TOKEN = "bench-push-token-0123456789"
DAG = '''import pendulum
from airflow.sdk import dag, task


@dag(dag_id="{dag_id}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def made():
    @task
    def say():
        print("{dag_id}")

    say()


made()
'''


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    report: dict = {"benchmark": "git_push_to_visible", "runs": args.runs}
    with tempfile.TemporaryDirectory(prefix="hangar-bench-git-") as tmp, \
            GitServer(root=Path(tmp) / "served", token=TOKEN) as server, hangar_side.control_plane() as plane:
        clone = server.create_repo("dags")
        clone.commit({"first.py": DAG.format(dag_id="push_0")}, "first")
        clone.push()
        plane.api("POST", "/api/v1/git-credentials", json={"name": "bench", "token": TOKEN}).raise_for_status()
        plane.api("POST", "/api/v1/environments", json={
            "name": "pushed", "git": {"url": server.url("dags"), "credential": "bench"}}).raise_for_status()
        assert plane.wait("pushed")["status"] == "AVAILABLE"
        airflow = plane.airflow("pushed")
        airflow.wait_for_dag("push_0")
        secret = plane.api("POST", "/api/v1/environments/pushed/git-webhook-secret").json()["secret"]
        rounds = []
        for number in range(1, args.runs + 1):
            dag_id = f"push_{number}"
            clone.commit({f"{dag_id}.py": DAG.format(dag_id=dag_id)}, dag_id)
            clone.push()
            body = json.dumps({"ref": "refs/heads/main", "after": clone.head()}).encode()
            signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            started = time.monotonic()
            answer = httpx.post(f"{plane.url}/api/v1/environments/pushed/git-webhook", content=body,
                                headers={"X-Hub-Signature-256": signature, "Content-Type": "application/json"})
            assert answer.status_code == 202, answer.text
            while airflow.request("GET", f"/dags/{dag_id}").status_code != 200:
                time.sleep(0.1)
            rounds.append({"dag": dag_id, "seconds": round(time.monotonic() - started, 2),
                           "loadavg_1m": os.getloadavg()[0]})
        hangar_side.delete(plane, "pushed")
    median = statistics.median(r["seconds"] for r in rounds)
    report.update({"median_seconds": median, "rounds": rounds, "target_seconds": 5.0})
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
