"""Idle footprint: total PSS of an idle Hangar environment against an idle `airflow standalone`.

Run: uv run --extra test python bench/footprint.py --idle 20
Both are measured after being healthy and idle for the same number of seconds.
Hangar's number counts every process of the environment (all components and their
children), not the control plane or the shared embedded PostgreSQL, which are
reported apart. The environment is measured twice: after its create, and again after an
update of a key every component reads (`core.dagbag_import_timeout`), whose new fork server has
also imported the api-server's routes for it (`hangar["after_update"]`).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

import baseline  # noqa: E402
import hangar_side  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dags" / "hello_taskflow.py"


def _pss(pid: int) -> float:
    process = psutil.Process(pid)
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_full_info().pss / 2**20
        except psutil.Error:
            pass
    return round(total, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=float, default=20)
    parser.add_argument("--no-fork", action="store_true",
                        help="every component a fresh interpreter (HANGAR_FORK_COMPONENTS=false)")
    parser.add_argument("--no-isolation", action="store_true",
                        help="every environment as the control plane's own user (HANGAR_ISOLATION=false)")
    args = parser.parse_args()
    report: dict = {"benchmark": "idle_footprint", "idle_seconds": args.idle, "fork_server": not args.no_fork,
                    "isolation": not args.no_isolation}
    extra = {**(hangar_side.NO_FORK if args.no_fork else {}), **(hangar_side.NO_ISOLATION if args.no_isolation else {})}
    with hangar_side.control_plane(extra) as plane:
        plane.create("idle", hangar_side.dags_folder(EXAMPLE))
        time.sleep(args.idle)
        report["hangar"] = hangar_side.environment_pss(plane, "idle")
        # the control plane alone: the environment's processes are its children, counted above
        report["hangar"]["control_plane_pss_mib"] = round(psutil.Process(plane.process.pid).memory_full_info().pss / 2**20, 1)
        plane.cli("env", "update", "idle", "--config", "core.dagbag_import_timeout=31", "--wait")
        time.sleep(args.idle)
        report["hangar"]["after_update"] = hangar_side.environment_pss(plane, "idle")
        postmaster = int((plane.home / "pgdata" / "postmaster.pid").read_text().split()[0])
        report["hangar"]["embedded_postgres_pss_mib"] = _pss(postmaster)
        airflow_bin = hangar_side.runtime_airflow(plane)
        work = Path(tempfile.mkdtemp(prefix="bench-standalone-"))
        pg = baseline.embedded_pg(work / "pgdata")
        try:
            report["standalone"] = baseline.attempt(
                "standalone idle", baseline.standalone_idle_pss, airflow_bin=airflow_bin, workdir=work, pg_url=pg,
                port=baseline.free_port(), idle_s=args.idle,
            )
        finally:
            baseline.stop_embedded_pg(work / "pgdata")
    s = report["standalone"].get("pss_mib")
    report["ratio_hangar_to_standalone"] = round(report["hangar"]["pss_mib"] / s, 3) if s else None
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
