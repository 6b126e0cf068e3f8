"""`hangar env logs --grep` over 1 million stored log lines, against GNU grep over the same
lines as one plain file (the floor for a text search on this machine); and how soon
`hangar env logs --follow` prints a line a component has just written (target: within 2 s).

The lines are Airflow 3 scheduler and worker lines of realistic length, written straight into a
real environment's log store (as the shipper writes them); one line in 10 000 holds the
searched text. The CLI is timed as a user runs it (a new process each time), with --tail large
enough to print every match.

Run: uv run --extra test python bench/log_query.py --runs 5 [--lines 1000000]
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hangar_side  # noqa: E402

MESSAGES = [
    "Sending TaskInstanceKey(dag_id='fanout', task_id='work', run_id='manual__2026', try_number=1, map_index={i}) to executor",
    "Marking run <DagRun fanout @ 2026-12-07 10:00:00+00:00: manual__2026-12-07T10:00:00+00:00, state:running> successful",
    "Task finished [airflow.task] loc=task_runner.py:1225 duration={i}.5 final_state=success",
    "1 tasks up for execution: <TaskInstance: fanout.work manual__2026 map_index={i} [scheduled]>",
    "Setting external_executor_id for <TaskInstance: fanout.work manual__2026 [queued]> to {i}",
]
NEEDLE = "needle-3f9c"


def fill(store: Path, lines: int) -> int:
    rng = random.Random(7)
    written = 0
    per_component = lines // 2
    for component in ("scheduler", "worker-1"):
        folder = store / component
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "current.log", "w") as out:
            for i in range(per_component):
                stamp = f"2026-12-07T{10 + i // 3_600_000:02d}:{i // 60_000 % 60:02d}:{i // 1000 % 60:02d}.{i % 1000:03d}000Z"
                level = "WARNING" if i % 97 == 0 else "INFO"
                text = rng.choice(MESSAGES).format(i=i)
                if i % 10_000 == 0:
                    text += f" {NEEDLE}"
                out.write(f"{stamp}\t{level}\t{text}\n")
                written += 1
    return written


def timed(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    start = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return time.monotonic() - start, len(result.stdout.splitlines())


def follow_seconds(plane, runs: int) -> list[float]:
    """Seconds from a line appended to the scheduler's raw log (as the scheduler writes it) to
    `hangar env logs --follow` printing it."""
    raw = plane.home / "environments" / plane.env_id("logs") / "logs" / "components" / "scheduler.log"
    follower = subprocess.Popen([sys.executable, "-m", "hangar.cli.main", "env", "logs", "logs", "--follow",
                                 "--tail", "0", "--grep", "follow-mark"], env=plane.env, stdout=subprocess.PIPE, text=True)
    seconds = []
    try:
        time.sleep(3)  # the follower is connected (its first, empty, batch is past)
        for i in range(runs):
            with open(raw, "a") as out:
                out.write(f"2026-12-07T12:00:00.000000Z [info     ] follow-mark {i}\n")
            written = time.monotonic()
            line = follower.stdout.readline()
            seconds.append(round(time.monotonic() - written, 3))
            assert f"follow-mark {i}" in line, line
    finally:
        follower.terminate()
        follower.wait(10)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    report: dict = {"benchmark": "log_query", "lines": args.lines, "runs": args.runs}
    dags = hangar_side.dags_folder(hangar_side.BENCH_DIR / "dags" / "fanout.py")
    with hangar_side.control_plane({"HANGAR_LOG_SEGMENT_BYTES": str(1024 ** 3)}) as plane:
        plane.create("logs", dags)
        store = plane.home / "logs" / plane.env_id("logs")
        report["lines_written"] = fill(store, args.lines)
        report["bytes"] = sum(p.stat().st_size for p in store.rglob("*.log"))
        plain = Path(tempfile.mkdtemp(prefix="bench-logs-")) / "all.log"
        with open(plain, "w") as out:
            for path in sorted(store.rglob("current.log")):
                out.write(path.read_text())
        cli = [sys.executable, "-m", "hangar.cli.main", "env", "logs", "logs", "--grep", NEEDLE, "--tail", "100000"]
        hangar, grep = [], []
        for _ in range(args.runs):  # interleaved, so that load falls on both alike
            hangar.append(timed(cli, plane.env))
            grep.append(timed(["grep", "-F", NEEDLE, str(plain)], plane.env))
        startup = [timed([sys.executable, "-m", "hangar.cli.main", "--help"], plane.env)[0] for _ in range(args.runs)]
        follow = follow_seconds(plane, args.runs)
        hangar_side.delete(plane, "logs")
        plain.unlink()
    report["hangar_cli"] = {"median_seconds": round(statistics.median(t for t, _ in hangar), 3),
                            "runs": [round(t, 3) for t, _ in hangar], "matches": hangar[0][1]}
    report["grep"] = {"median_seconds": round(statistics.median(t for t, _ in grep), 3),
                      "runs": [round(t, 3) for t, _ in grep], "matches": grep[0][1]}
    report["cli_startup_median_seconds"] = round(statistics.median(startup), 3)
    report["follow"] = {"median_seconds": statistics.median(follow), "runs": follow}
    report["ratio_hangar_to_grep"] = round(report["hangar_cli"]["median_seconds"] / report["grep"]["median_seconds"], 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
