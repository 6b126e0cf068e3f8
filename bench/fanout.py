"""Wall time of a 100-task mapped fan-out DAG in a Hangar environment, against
`airflow standalone` on the same embedded PostgreSQL (same Airflow install, same DAG).

Run: uv run --extra test python bench/fanout.py --runs 3
Timing: from the POST that triggers the run to the run's state `success`, read
through Airflow's REST API (polled every 0.25 s).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import baseline  # noqa: E402
import hangar_side  # noqa: E402


def hangar_run(plane, airflow) -> dict:
    cpu_before = hangar_side.environment_cpu_seconds(plane, "fanout")
    start = time.monotonic()
    run_id = airflow.trigger("fanout")
    while True:
        state = airflow.run_state("fanout", run_id)
        if state in ("success", "failed"):
            break
        time.sleep(0.25)
    seconds = time.monotonic() - start
    tis = airflow.request("GET", f"/dags/fanout/dagRuns/{run_id}/taskInstances?limit=200").json()["task_instances"]
    mapped = airflow.request("GET", f"/dags/fanout/dagRuns/{run_id}/taskInstances/work/listMapped?limit=200").json()
    return {"seconds": round(seconds, 2), "state": state, "mapped_tasks": mapped.get("total_entries"),
            "task_instances": len(tis), "loadavg_1m": os.getloadavg()[0],
            "environment_cpu_seconds": round(hangar_side.environment_cpu_seconds(plane, "fanout") - cpu_before, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=100)
    args = parser.parse_args()
    dags = hangar_side.dags_folder(baseline.FANOUT_DAG)
    report: dict = {"benchmark": "fanout", "tasks": args.tasks, "runs": args.runs}
    with hangar_side.control_plane() as plane:
        plane.create("fanout", dags, "--env", f"HANGAR_BENCH_FANOUT_N={args.tasks}")
        airflow = plane.airflow("fanout")
        runs = [hangar_run(plane, airflow) for _ in range(args.runs)]
        report["hangar"] = {"median_seconds": statistics.median(r["seconds"] for r in runs), "runs": runs}
        hangar_side.delete(plane, "fanout")
        airflow_bin = hangar_side.runtime_airflow(plane)
        standalone = []
        for _ in range(args.runs):
            work = Path(tempfile.mkdtemp(prefix="bench-standalone-"))
            pg = baseline.embedded_pg(work / "pgdata")
            try:
                standalone.append(baseline.attempt(
                    "standalone fanout", baseline.standalone_fanout, airflow_bin=airflow_bin, workdir=work,
                    pg_url=pg, port=baseline.free_port(), tasks=args.tasks,
                ))
            finally:
                baseline.stop_embedded_pg(work / "pgdata")
        report["standalone"] = baseline.summarize(standalone)
    sm = report["standalone"]["median_seconds"]
    report["ratio_hangar_to_standalone"] = round(report["hangar"]["median_seconds"] / sm, 3) if sm else None
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
