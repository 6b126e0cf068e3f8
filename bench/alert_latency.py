"""Event to alert delivered: seconds from a task failing (its end_date in the metadata
database, read through Airflow's REST API) to a real local HTTP receiver getting the
dag_run_failed alert. Each round fails one run (an incident, one alert) and then runs it
successfully (the incident resolves), so every round alerts anew. Median of --runs.

The reference is CloudWatch's floor, not measured here: an alarm on a 1-minute metric cannot
fire before its period ends, at least 60 s after the event.

Run: uv run --extra test python bench/alert_latency.py --runs 5
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hangar_side  # noqa: E402
from tests.e2e.receivers import Receiver  # noqa: E402

CLOUDWATCH_FLOOR_SECONDS = 60.0


def run(airflow, conf: dict) -> str:
    answer = airflow.request("POST", "/dags/flaky/dagRuns", json={"logical_date": None, "conf": conf})
    answer.raise_for_status()
    run_id = answer.json()["dag_run_id"]
    airflow.wait_for_run("flaky", run_id, timeout=300)
    return run_id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    report: dict = {"benchmark": "alert_latency", "runs": args.runs}
    dags = hangar_side.dags_folder(hangar_side.BENCH_DIR / "dags" / "flaky.py")
    receiver = Receiver()
    with hangar_side.control_plane() as plane:
        plane.create("alerted", dags)
        airflow = plane.airflow("alerted")
        airflow.wait_for_dag("flaky")
        airflow.request("PATCH", "/dags/flaky", json={"is_paused": False}).raise_for_status()
        plane.api("POST", "/api/v1/alerts", json={"name": "failed", "environment": "alerted", "event": "dag_run_failed",
                                                  "webhook": receiver.url}).raise_for_status()
        rounds = []
        for _ in range(args.runs):
            run_id = run(airflow, {"fail": True})
            _, _, notice = receiver.next(alert="failed", state="firing", timeout=300)
            received = receiver.arrived
            ti = airflow.request("GET", f"/dags/flaky/dagRuns/{run_id}/taskInstances/maybe").json()
            failed_at = datetime.fromisoformat(ti["end_date"].replace("Z", "+00:00")).timestamp()
            rounds.append({"run_id": run_id, "seconds": round(received - failed_at, 2),
                           "in_summary": run_id in notice["summary"], "loadavg_1m": os.getloadavg()[0]})
            run(airflow, {})  # a good run resolves the incident
            receiver.next(alert="failed", state="resolved", timeout=300)
        hangar_side.delete(plane, "alerted")
    receiver.close()
    median = statistics.median(r["seconds"] for r in rounds)
    report.update({"median_seconds": median, "rounds": rounds, "cloudwatch_floor_seconds": CLOUDWATCH_FLOOR_SECONDS,
                   "ratio_to_cloudwatch_floor": round(median / CLOUDWATCH_FLOOR_SECONDS, 3)})
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
