"""Start-up time of the `hangar` CLI: `hangar --help`, and `hangar env list` against a live control plane.

Run: .venv/bin/python bench/cli.py [--runs 10] [--bytecode cache|none]

Every command but `hangar server` and `hangar worker join` is a small HTTP client, so its wall time
is mostly Python start-up and imports. The baseline is `python -c "import typer, httpx"`: what
any CLI built on Typer and httpx pays before doing anything. The control plane is started exactly
as in the end-to-end tests (hangar_side.control_plane(): `python -m hangar.cli.main server` in a
temporary HANGAR_HOME, ready once /health answers and admin.key exists) and holds no environment,
so `hangar env list` prints nothing. Each round runs every command once, in turn, so that
load from other work falls on all of them alike; one unmeasured round first warms the caches.

A reference row, the baseline plus building hangar.settings.Settings, is the floor for any command
that reads its configuration (`env list` does: HANGAR_HOME locates admin.key). Typer itself imports
pydantic to convert a command's parameters, so a command's own floor is above the baseline anyway.

Bytecode: Python caches compiled modules (.pyc) on first import unless PYTHONDONTWRITEBYTECODE
is set, as it is on some machines and CI images; then every start compiles every module it
imports, which roughly doubles these times. `--bytecode cache` (the default, as on a user's
install) gives the commands a fresh PYTHONPYCACHEPREFIX that the warm-up round fills;
`--bytecode none` sets PYTHONDONTWRITEBYTECODE and an empty prefix, so nothing is cached. Either
way the installed packages' own __pycache__ folders are neither read nor written.

Prints JSON: min/median/max wall seconds per command and each median's ratio to the baseline's,
and the same for CPU seconds (user + system of the command's process), which other load on the
machine moves far less than wall time.
Which source tree is measured follows sys.path as usual (PYTHONPATH=<tree>/src measures another).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hangar_side  # noqa: E402  (puts the repository on sys.path)

TARGET_ENV_LIST_SECONDS = 0.8
BASELINE = "baseline_import_typer_httpx"
# what any command that reads its configuration pays at least: the baseline plus pydantic's Settings
SETTINGS_FLOOR = "import typer, httpx; from hangar.settings import Settings; Settings()"


def hangar_argv() -> list[str]:
    """The `hangar` console script beside this Python, as a user runs it; else the module."""
    script = Path(sys.executable).parent / "hangar"
    return [str(script)] if script.exists() else [sys.executable, "-m", "hangar.cli.main"]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of argv."""
    cpu, start = children_cpu(), time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    wall, cpu = time.perf_counter() - start, children_cpu() - cpu
    if result.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {result.returncode}: {result.stderr.strip()[-500:]}")
    return wall, cpu


def summarize(samples: list[float], baseline: float | None) -> dict:
    median = statistics.median(samples)
    summary = {"min": round(min(samples), 3), "median": round(median, 3), "max": round(max(samples), 3)}
    if baseline is not None:
        summary["ratio_to_baseline"] = round(median / baseline, 2)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="measured runs of each command")
    parser.add_argument("--bytecode", choices=("cache", "none"), default="cache",
                        help="cache: .pyc files cached as on a user's install; none: compiled at every start")
    args = parser.parse_args()

    hangar = hangar_argv()
    commands = {
        BASELINE: [sys.executable, "-c", "import typer, httpx"],
        "hangar_help": [*hangar, "--help"],
        "hangar_env_list": [*hangar, "env", "list"],
        "reference_typer_httpx_settings": [sys.executable, "-c", SETTINGS_FLOOR],
    }
    report: dict = {
        "benchmark": "cli_startup",
        "command": shlex.join([sys.executable, *sys.argv]),
        "runs": args.runs,
        "cpus": os.cpu_count(),
        "machine_load_average_1m_before": round(os.getloadavg()[0], 2),
        "target_env_list_seconds": TARGET_ENV_LIST_SECONDS,
        "bytecode": args.bytecode,
    }
    with hangar_side.control_plane() as plane, tempfile.TemporaryDirectory(prefix="hangar-bench-pyc-") as pyc:
        env = {k: v for k, v in plane.env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = pyc
        if args.bytecode == "none":
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        report["hangar_package"] = subprocess.run(
            [sys.executable, "-c", "import hangar; print(hangar.__path__[0])"], env=env, capture_output=True,
            text=True, check=True).stdout.strip()
        for argv in commands.values():
            timed(argv, env)
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                wall, cpu = timed(argv, env)
                walls[name].append(wall)
                cpus[name].append(cpu)
    report["machine_load_average_1m_after"] = round(os.getloadavg()[0], 2)
    report["commands"] = {}
    for name, argv in commands.items():
        own = name == BASELINE
        report["commands"][name] = {
            "argv": shlex.join(argv),
            "wall_seconds": summarize(walls[name], None if own else statistics.median(walls[BASELINE])),
            "cpu_seconds": summarize(cpus[name], None if own else statistics.median(cpus[BASELINE])),
            "wall_seconds_runs": [round(w, 3) for w in walls[name]],
        }
    report["target_met"] = report["commands"]["hangar_env_list"]["wall_seconds"]["median"] <= TARGET_ENV_LIST_SECONDS
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
