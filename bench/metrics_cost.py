"""What Airflow's StatsD metrics cost: the environment's CPU-seconds for the 100-task fan-out
with metrics on (Hangar's default) and off (metrics.statsd_on=False), in the same run, and the
control plane's CPU-seconds meanwhile (it receives and maps every packet).

Both environments exist for the whole run; their runs alternate (on, off, on, off, ...), so
that load on the shared machine falls on both alike. Target: on costs at most 5 % more.

Run: uv run --extra test python bench/metrics_cost.py --runs 5
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

import baseline  # noqa: E402
import hangar_side  # noqa: E402


def run_once(plane, name: str) -> dict:
    airflow = plane.airflow(name)
    control = psutil.Process(plane.process.pid)
    cp_before = sum(control.cpu_times()[:2])
    cpu_before = hangar_side.environment_cpu_seconds(plane, name)
    start = time.monotonic()
    run_id = airflow.trigger("fanout")
    state = airflow.wait_for_run("fanout", run_id, timeout=900)
    return {"state": state, "seconds": round(time.monotonic() - start, 2),
            "environment_cpu_seconds": round(hangar_side.environment_cpu_seconds(plane, name) - cpu_before, 2),
            "control_plane_cpu_seconds": round(sum(control.cpu_times()[:2]) - cp_before, 2),
            "loadavg_1m": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=100)
    args = parser.parse_args()
    dags = hangar_side.dags_folder(baseline.FANOUT_DAG)
    fanout = f"HANGAR_BENCH_FANOUT_N={args.tasks}"
    report: dict = {"benchmark": "metrics_cost", "tasks": args.tasks, "runs": args.runs}
    with hangar_side.control_plane() as plane:
        plane.create("metrics-on", dags, "--env", fanout)
        plane.create("metrics-off", dags, "--env", fanout, "--config", "metrics.statsd_on=False")
        for name in ("metrics-on", "metrics-off"):  # a first run each, not counted: DAG parsed, pools warm
            run_once(plane, name)
        runs: dict[str, list[dict]] = {"metrics-on": [], "metrics-off": []}
        for _ in range(args.runs):
            for name in runs:
                runs[name].append(run_once(plane, name))
        metrics = plane.api("GET", "/metrics").text
        report["series_of_metrics_on"] = sum(1 for line in metrics.splitlines()
                                             if 'environment="metrics-on"' in line and line.startswith("airflow_"))
        report["series_of_metrics_off"] = sum(1 for line in metrics.splitlines()
                                              if 'environment="metrics-off"' in line and line.startswith("airflow_"))
        for name, done in runs.items():
            report[name] = {
                "median_environment_cpu_seconds": statistics.median(r["environment_cpu_seconds"] for r in done),
                "median_control_plane_cpu_seconds": statistics.median(r["control_plane_cpu_seconds"] for r in done),
                "median_seconds": statistics.median(r["seconds"] for r in done), "runs": done}
        for name in runs:
            hangar_side.delete(plane, name)
    on, off = report["metrics-on"], report["metrics-off"]
    report["cpu_ratio_on_to_off"] = round(on["median_environment_cpu_seconds"] / off["median_environment_cpu_seconds"], 3)
    report["cpu_ratio_with_control_plane"] = round(
        (on["median_environment_cpu_seconds"] + on["median_control_plane_cpu_seconds"])
        / (off["median_environment_cpu_seconds"] + off["median_control_plane_cpu_seconds"]), 3)
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
