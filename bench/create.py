"""Seconds from create to AVAILABLE with a cached runtime, next to `airflow standalone`'s boot.

Run: uv run --extra test python bench/create.py --runs 3
Prints JSON: Hangar's runs and median, standalone's runs and median, and the ratio.
The first create (runtime build + template migration) is reported apart, as `cold`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import baseline  # noqa: E402
import hangar_side  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dags" / "hello_taskflow.py"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    dags = hangar_side.dags_folder(EXAMPLE)
    report: dict = {"benchmark": "create", "runs": args.runs}
    with hangar_side.control_plane() as plane:
        report["cold"] = hangar_side.create_seconds(plane, "cold", dags)
        hangar_side.delete(plane, "cold")
        runs = []
        for i in range(args.runs):
            runs.append(hangar_side.create_seconds(plane, f"warm{i}", dags))
            hangar_side.delete(plane, f"warm{i}")
        airflow_bin = hangar_side.runtime_airflow(plane)
        report["hangar"] = {"median_seconds": statistics.median(r["seconds"] for r in runs), "runs": runs}
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
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
