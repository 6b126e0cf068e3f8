"""Seconds from create to AVAILABLE with a cached runtime, next to `airflow standalone`'s boot.

Run: uv run --extra test python bench/create.py --runs 3
Prints JSON: Hangar's runs and median, standalone's runs and median, and the ratio.
The first create (runtime build + template migration) is reported apart, as `cold`.
Each Hangar run also records the CPU seconds every component (and the fork server) had used
when the environment became AVAILABLE. With --fresh, the same creates are measured again on a
control plane started with HANGAR_FORK_COMPONENTS=false (every component a fresh interpreter),
alternating with the fork-server runs so both see the same load. With --no-isolation the other
control plane runs every environment as the control plane's own user (HANGAR_ISOLATION=false), on
the same interpreter, so the cost of per-environment users, roles and cgroups shows.
Each run is also measured as a user sees it: `hangar env create NAME --dags D --wait`, from
starting the command to its exit (the CLI's own start and its polling included), alternating
with the API-measured runs on the same control plane.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import nullcontext
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import baseline  # noqa: E402
import hangar_side  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dags" / "hello_taskflow.py"


def _measured(plane, name: str, dags: Path) -> dict:
    run = hangar_side.create_seconds(plane, name, dags)
    run["cpu_seconds_at_available"] = hangar_side.component_cpu_seconds(plane, name)
    hangar_side.delete(plane, name)
    return run


def _measured_cli(plane, name: str, dags: Path) -> dict:
    start = time.monotonic()
    plane.cli("env", "create", name, "--dags", str(dags), "--wait")
    seconds = round(time.monotonic() - start, 2)
    hangar_side.delete(plane, name)
    return {"seconds": seconds}


def _summary(runs: list[dict]) -> dict:
    return {"median_seconds": statistics.median(r["seconds"] for r in runs),
            "median_cpu_seconds": statistics.median(sum(r["cpu_seconds_at_available"].values()) for r in runs),
            "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fresh", action="store_true", help="also measure without the fork server")
    parser.add_argument("--no-isolation", action="store_true",
                        help="also measure with every environment as the control plane's own user")
    args = parser.parse_args()
    if args.fresh and args.no_isolation:
        parser.error("--fresh and --no-isolation each pair against one other control plane; give one")
    dags = hangar_side.dags_folder(EXAMPLE)
    report: dict = {"benchmark": "create", "runs": args.runs}
    other = hangar_side.NO_FORK if args.fresh else hangar_side.NO_ISOLATION if args.no_isolation else None
    other_name = "hangar_without_fork_server" if args.fresh else "hangar_without_isolation"
    fresh_plane = hangar_side.control_plane(other, env_port_start=32000) if other else nullcontext()
    with hangar_side.control_plane() as plane, fresh_plane as fresh:
        report["cold"] = hangar_side.create_seconds(plane, "cold", dags)
        hangar_side.delete(plane, "cold")
        if other:  # its first create may build its runtime or template: not a measured run
            hangar_side.create_seconds(fresh, "cold", dags)
            hangar_side.delete(fresh, "cold")
        runs, fresh_runs, cli_runs = [], [], []
        for i in range(args.runs):
            runs.append(_measured(plane, f"warm{i}", dags))
            cli_runs.append(_measured_cli(plane, f"cli{i}", dags))
            if other:
                fresh_runs.append(_measured(fresh, f"fresh{i}", dags))
        airflow_bin = hangar_side.runtime_airflow(plane)
        report["hangar"] = _summary(runs)
        report["hangar_cli_wait"] = {"median_seconds": statistics.median(r["seconds"] for r in cli_runs),
                                     "runs": [r["seconds"] for r in cli_runs]}
        if other:
            report[other_name] = _summary(fresh_runs)
        standalone = []
        for i in range(args.runs):
            work = Path(tempfile.mkdtemp(prefix="bench-standalone-"))
            pg = baseline.embedded_pg(work / "pgdata")
            try:
                standalone.append(baseline.attempt(
                    "standalone boot", baseline.standalone_boot, airflow_bin=airflow_bin, workdir=work,
                    pg_url=pg, port=baseline.free_port(),
                ))
            finally:
                baseline.stop_embedded_pg(work / "pgdata")
        report["standalone"] = baseline.summarize(standalone)
    hangar_median = report["hangar"]["median_seconds"]
    standalone_median = report["standalone"]["median_seconds"]
    report["ratio_hangar_to_standalone"] = round(hangar_median / standalone_median, 3) if standalone_median else None
    cli_median = report["hangar_cli_wait"]["median_seconds"]
    report["ratio_cli_wait_to_standalone"] = round(cli_median / standalone_median, 3) if standalone_median else None
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
