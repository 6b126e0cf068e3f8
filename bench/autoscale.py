"""Autoscaling: a burst of mapped tasks on a CeleryExecutor environment (1 to 4 workers),
next to the same burst on a LocalExecutor environment of the same class.

Run: .venv/bin/python bench/autoscale.py --runs 3
Prints one JSON document: every run, medians, the target (met or missed, and by how much),
the Celery/LocalExecutor throughput ratio, the load average at the start and end and at each
burst, the Airflow and Celery versions, and where a new worker's start-up time goes.

One control plane (its own HANGAR_HOME, a broker given by --broker, the autoscaler's
cooldown set by --cooldown) runs two environments of class `small` with the same DAG,
bench/dags_autoscale/burst.py (one task mapped over range(--tasks), each instance sleeping
1 s, no retries):
* `burstc`: `--executor celery --min-workers 1 --max-workers 4` (worker_concurrency 5);
* `burstl`: `--executor local`.
Both stay up for the whole benchmark; each burst runs while the other environment is idle.

Each run:
1. Celery burst. Before it, the environment runs exactly one worker, RUNNING and ready
   (Celery logged "ready."). The clock starts at the POST that triggers the DAG run
   (Airflow's REST API with `hangar env token`). A thread reads the control plane's
   GET /api/v1/environments/burstc with the admin key every 0.25 s:
   - to_4_running_seconds: until four worker components are in state RUNNING (Hangar's
     state: Celery reported the worker ready, through its worker_ready signal). This is the
     figure the target is for.
   - to_4_ready_seconds: until the fourth worker logged Celery's "ready." (it consumes from
     the queue from then on), read from the workers' logs.
   - run_seconds: until the DAG run's end_date as Airflow records it (so the poll's own
     latency is not in it); throughput = tasks / run_seconds.
   - failed: task instances of the run whose state is not success (Airflow's REST API).
   - max workers seen (listed, and RUNNING), and after the run's end, the seconds until the
     environment lists one worker again (the autoscaler's cooldown, reported) and until the
     retired workers' processes have exited (Celery's warm shutdown).
   - per started worker: the process start (/proc), when it was listed and RUNNING in Hangar,
     and from its log: the first line (Airflow's CLI imported, the Celery executor's settings
     loaded), Airflow's celery command starting, Celery connected to the broker and ready,
     its first task received and executing. The autoscaler's own lines (control plane log)
     show every scale-up and warm shutdown, also those before the run's end.
2. The same burst on `burstl`: run_seconds, throughput, failed.
CPU seconds of each environment's process tree over the burst are given too (other load on
the machine distorts them far less than wall time). For the Celery environment every worker's
tree is also read each second, so a worker retired before the run's end still counts.

Cleanup: the control plane and every process it started are stopped (ControlPlane.cleanup),
also on errors and on SIGTERM. Targets are reported, never asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hangar_side  # noqa: E402

from tests.e2e.harness import Airflow, ControlPlane, free_port  # noqa: E402

BURST_DAG = Path(__file__).resolve().parent / "dags_autoscale" / "burst.py"
DAG_ID = "burst"
CELERY, LOCAL = "burstc", "burstl"
MAX_WORKERS = 4
POLL_S = 0.25
TARGET_TO_4_RUNNING_S = 10.0
RUN_TIMEOUT_S = 1200
SETTLE_S = 5  # untimed, between bursts


def log(msg: str) -> None:
    print(f"[autoscale] {msg}", file=sys.stderr, flush=True)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 2) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def is_worker(name: str) -> bool:
    return name.startswith("worker-")


def parse_utc(text: str | None) -> float | None:
    """An Airflow timestamp (ISO 8601, UTC) as a Unix time."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@contextmanager
def control_plane(broker: str, cooldown: float):
    home = Path(tempfile.mkdtemp(prefix="hangar-bench-autoscale-"))
    home.chmod(0o755)
    plane = ControlPlane(home=home, port=free_port(), env_port_start=34000,
                         extra_env={"HANGAR_CELERY_BROKER_URL": broker, "HANGAR_AUTOSCALE_COOLDOWN": str(cooldown)})
    try:
        plane.start()
        yield plane
    finally:
        plane.cleanup()
        shutil.rmtree(home, ignore_errors=True)


def env_root(plane: ControlPlane, name: str) -> Path:
    with sqlite3.connect(plane.home / "state" / "hangar.db") as db:
        (env_id,) = db.execute("SELECT id FROM environments WHERE name = ? AND status != 'DELETED'", (name,)).fetchone()
    return plane.home / "environments" / env_id


def effective_config(root: Path) -> dict:
    import configparser

    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(root / "airflow.cfg")
    wanted = {"core": ("executor", "parallelism", "max_active_tasks_per_dag"),
              "celery": ("worker_concurrency", "worker_prefetch_multiplier", "task_acks_late")}
    return {f"{s}.{k}": cfg.get(s, k) for s, keys in wanted.items() for k in keys if cfg.has_option(s, k)}


def versions(plane: ControlPlane) -> dict:
    """Airflow, Celery and the Celery provider in the runtime that runs the Celery workers."""
    code = ("import importlib.metadata as m, json; out = {}\n"
            "for p in ('apache-airflow', 'celery', 'apache-airflow-providers-celery', 'kombu', 'redis'):\n"
            "    try: out[p] = m.version(p)\n"
            "    except m.PackageNotFoundError: pass\n"
            "print(json.dumps(out))")
    found = {}
    for python in sorted(Path(plane.env["HANGAR_RUNTIMES_DIR"]).glob("*/bin/python")):
        try:
            out = json.loads(subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                                            timeout=120).stdout)
        except (ValueError, subprocess.SubprocessError):
            continue
        found[python.parent.parent.name] = out
    return found


def tree_cpu(pid: int) -> float | None:
    """CPU seconds of a process and its live descendants, with the children they reaped."""
    try:
        leader = psutil.Process(pid)
        processes = [leader, *leader.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0.0
    for process in processes:
        try:
            t = process.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


def component_cpu(plane: ControlPlane, name: str) -> dict[int, float]:
    """pid -> tree CPU seconds of each component of an environment, workers included."""
    env = plane.api("GET", f"/api/v1/environments/{name}").json()
    found = {}
    for component in env["components"]:
        if component.get("pid") and (cpu := tree_cpu(component["pid"])) is not None:
            found[component["pid"]] = cpu
    return found


def process_start(pid: int) -> float | None:
    """When a process started, as a Unix time to ~10 ms: its start in clock ticks since boot
    (/proc/PID/stat) against /proc/uptime read now (psutil's create_time rounds the boot time
    to whole seconds)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))


class EnvWatcher(threading.Thread):
    """Reads GET /api/v1/environments/{name} every POLL_S seconds and keeps every reading."""

    def __init__(self, plane: ControlPlane, name: str, t0: float):
        super().__init__(daemon=True)
        self.url = f"{plane.url}/api/v1/environments/{name}"
        self.headers = {"Authorization": f"Bearer {plane.key}"}
        self.t0 = t0
        self.samples: list[dict] = []
        self.created: dict[int, float | None] = {}  # worker pid -> process start (Unix time), read when first listed
        # worker pid -> its tree's CPU seconds at the last reading (every 4th poll): a worker retired
        # before the run's end has left the environment's process tree, its CPU has not left the burst
        self.worker_cpu: dict[int, float] = {}
        self.polls = 0
        self.errors = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10, headers=self.headers) as client:
            while not self.stop_event.is_set():
                started = time.time()
                try:
                    env = client.get(self.url).json()
                    workers = [c for c in env["components"] if is_worker(c["name"])]
                    for w in workers:
                        if w.get("pid") and w["pid"] not in self.created:
                            self.created[w["pid"]] = process_start(w["pid"])
                        if w.get("pid") and self.polls % 4 == 0 and (cpu := tree_cpu(w["pid"])) is not None:
                            self.worker_cpu[w["pid"]] = cpu
                    self.polls += 1
                    self.samples.append({"t": time.time() - self.t0, "workers": workers, "scale": env.get("workers")})
                except (httpx.HTTPError, ValueError, KeyError):
                    self.errors += 1
                self.stop_event.wait(max(0.0, POLL_S - (time.time() - started)))

    def latest(self) -> dict | None:
        return self.samples[-1] if self.samples else None

    def finish(self) -> None:
        self.stop_event.set()
        self.join(timeout=15)


class Logs:
    """Byte offsets of the worker logs and the control plane log at the trigger, so that only
    what a burst writes is read."""

    STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z) ")
    # first_log_line: Airflow's CLI is imported and loads the Celery executor's configuration
    EVENTS = (("celery_command", "starting stale bundle cleanup process"), ("connected", "Connected to "),
              ("ready", " ready."), ("first_task_received", "] received"),
              ("first_task_executing", "Executing workload"))

    def __init__(self, plane: ControlPlane, root: Path):
        self.plane = plane
        self.dir = root / "logs" / "components"
        # every worker log present now (a name is reused by a later worker); a new log is read from 0
        self.worker_offsets = {path.stem: self._size(path) for path in self.dir.glob("worker-*.log")}
        self.plane_offset = self._size(plane.log)

    @staticmethod
    def _size(path: Path) -> int:
        try:
            return path.stat().st_size
        except OSError:
            return 0

    @staticmethod
    def _read(path: Path, offset: int) -> str:
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def worker_events(self, name: str, t0: float) -> dict:
        """Seconds after t0 of a worker's first log line and of each event in EVENTS."""
        out: dict = {}
        for line in self._read(self.dir / f"{name}.log", self.worker_offsets.get(name, 0)).splitlines():
            match = self.STAMP.match(line)
            if not match:
                continue
            at = round(parse_utc(match.group(1)) - t0, 2)
            out.setdefault("first_log_line", at)
            for key, needle in self.EVENTS:
                if needle in line:
                    out.setdefault(key, at)
        return out

    def scaling_decisions(self, t0: float) -> list[dict]:
        """The autoscaler's lines in the control plane log (local time) since the trigger."""
        found = []
        for line in self._read(self.plane.log, self.plane_offset).splitlines():
            if "hangar.reconciler.loops.autoscaler" not in line or "want" not in line:
                continue
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            found.append({"t": round(stamp - t0, 2), "line": line.split(": ", 1)[-1][-200:]})
        return found


def airflow_for(plane: ControlPlane, name: str) -> Airflow:
    return plane.airflow(name)  # a fresh token for each burst


def trigger(airflow: Airflow) -> tuple[str, float]:
    """POST a DAG run; returns its id and the Unix time just before the POST."""
    t0 = time.time()
    response = airflow.request("POST", f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None})
    assert response.status_code == 200, response.text
    return response.json()["dag_run_id"], t0


def wait_run(airflow: Airflow, run_id: str, timeout: float = RUN_TIMEOUT_S) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = airflow.request("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
            if response.status_code == 200 and response.json()["state"] in ("success", "failed"):
                return response.json()
        except httpx.HTTPError:
            pass  # an api-server slow under load: ask again
        time.sleep(0.5)
    raise RuntimeError(f"run {run_id} did not finish within {timeout:.0f} s")


def task_instances(airflow: Airflow, run_id: str) -> list[dict]:
    found: list[dict] = []
    while True:
        page = airflow.request("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances",
                               params={"limit": 100, "offset": len(found)}).json()
        found.extend(page["task_instances"])
        if not page["task_instances"] or len(found) >= page["total_entries"]:
            return found


def outcome(airflow: Airflow, run_id: str, run: dict, t0: float, tasks: int) -> dict:
    tis = task_instances(airflow, run_id)
    states: dict[str, int] = {}
    for ti in tis:
        states[str(ti["state"])] = states.get(str(ti["state"]), 0) + 1
    end = parse_utc(run.get("end_date"))
    seconds = round(end - t0, 2) if end else None

    def first(key: str) -> float | None:
        values = [parse_utc(ti.get(key)) for ti in tis if ti.get(key)]
        return round(min(values) - t0, 2) if values else None

    spans = [(parse_utc(ti["start_date"]), parse_utc(ti["end_date"])) for ti in tis
             if ti.get("start_date") and ti.get("end_date")]
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans], key=lambda e: (e[0], e[1]))
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    waits = [parse_utc(ti["start_date"]) - parse_utc(ti["queued_when"]) for ti in tis
             if ti.get("start_date") and ti.get("queued_when")]
    durations = [b - a for a, b in spans]
    return {
        "state": run["state"], "run_seconds": seconds,
        "throughput_tasks_per_s": round(tasks / seconds, 2) if seconds else None,
        "task_instances": len(tis), "failed": sum(1 for ti in tis if ti["state"] != "success"),
        "states": states, "first_queued_s": first("queued_when"), "first_started_s": first("start_date"),
        "max_concurrent_tasks": peak,
        "median_queued_to_start_s": round(statistics.median(waits), 2) if waits else None,
        "median_task_duration_s": round(statistics.median(durations), 2) if durations else None,
    }


def worker_rows(sample: dict | None) -> list[dict]:
    return sample["workers"] if sample else []


def running_workers(sample: dict | None) -> int:
    return sum(1 for w in worker_rows(sample) if w["state"] == "RUNNING")


def wait_one_ready_worker(plane: ControlPlane, root: Path, timeout: float = 600) -> None:
    """Before a Celery burst: one worker, RUNNING, whose last start logged Celery's "ready."."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        env = plane.api("GET", f"/api/v1/environments/{CELERY}").json()
        workers = [c for c in env["components"] if is_worker(c["name"])]
        if len(workers) == 1 and workers[0]["state"] == "RUNNING":
            name = workers[0]["name"]
            text = (root / "logs" / "components" / f"{name}.log").read_text(errors="replace")
            banner = text.rfind(f"-------------- {name}@")  # Celery's banner, printed at each start
            if banner >= 0 and " ready." in text[banner:]:
                return
        time.sleep(1)
    raise RuntimeError("the Celery environment did not settle on one ready worker")


def celery_burst(plane: ControlPlane, root: Path, tasks: int, cooldown: float) -> dict:
    wait_one_ready_worker(plane, root)
    airflow = airflow_for(plane, CELERY)
    logs = Logs(plane, root)
    before = plane.api("GET", f"/api/v1/environments/{CELERY}").json()
    baseline_pids = {c["pid"] for c in before["components"] if is_worker(c["name"])}
    cpu_before = component_cpu(plane, CELERY)
    load_at_trigger = load()
    run_id, t0 = trigger(airflow)
    watcher = EnvWatcher(plane, CELERY, t0)
    watcher.start()
    try:
        run = wait_run(airflow, run_id)
        end_seen = time.time() - t0
        cpu_after = {**watcher.worker_cpu, **component_cpu(plane, CELERY)}
        cpu = round(sum(v - cpu_before.get(pid, 0.0) for pid, v in cpu_after.items()), 1)
        result = outcome(airflow, run_id, run, t0, tasks)
        result.update(loadavg_at_trigger=load_at_trigger, loadavg_at_end=load(), environment_cpu_seconds=cpu)
        run_end = (result["run_seconds"] or end_seen)
        # back to one worker: the cooldown counts from when demand fell below the workers running
        deadline = time.monotonic() + cooldown + 600
        while time.monotonic() < deadline:
            latest = watcher.latest()
            if latest and len(latest["workers"]) == 1 and (latest["scale"] or {}).get("current") == 1 \
                    and latest["t"] > run_end:
                break
            time.sleep(POLL_S)
        back = watcher.latest()
        all_pids = {w["pid"] for s in watcher.samples for w in s["workers"] if w.get("pid")}
        retired = [p for p in all_pids if p not in {w["pid"] for w in worker_rows(back)}]
        while time.monotonic() < deadline and any(psutil.pid_exists(p) for p in retired):
            time.sleep(POLL_S)
        gone_at = time.time() - t0
    finally:
        watcher.finish()
    samples = watcher.samples

    def first_t(predicate) -> float | None:
        return next((round(s["t"], 2) for s in samples if predicate(s)), None)

    started: dict[str, dict] = {}
    for s in samples:
        for w in s["workers"]:
            if w.get("pid") in baseline_pids:
                continue
            row = started.setdefault(w["name"], {"pid": w["pid"], "listed": round(s["t"], 2)})
            if row["pid"] is None:  # listed before its process was spawned
                row["pid"] = w["pid"]
            if w["state"] == "RUNNING":
                row.setdefault("running_in_hangar", round(s["t"], 2))
    for name, row in started.items():
        created = watcher.created.get(row["pid"])
        if created is not None:
            row["process_started"] = round(created - t0, 2)
        row.update(logs.worker_events(name, t0))
    ready = sorted(r["ready"] for r in started.values() if "ready" in r)
    decisions = logs.scaling_decisions(t0)
    to_4_running = first_t(lambda s: running_workers(s) >= MAX_WORKERS)
    to_4_ready = ready[MAX_WORKERS - 2] if len(ready) >= MAX_WORKERS - 1 else None  # worker-1 was ready already
    back_t = round(back["t"] - run_end, 2) if back and len(back["workers"]) == 1 else None
    result.update({
        "to_4_running_seconds": to_4_running,
        "to_4_ready_seconds": to_4_ready,
        "desired_4_seconds": first_t(lambda s: (s["scale"] or {}).get("desired", 0) >= MAX_WORKERS),
        "max_workers_listed": max((len(s["workers"]) for s in samples), default=None),
        "max_workers_running": max((running_workers(s) for s in samples), default=None),
        "max_running_tasks_seen": max(((s["scale"] or {}).get("running_tasks") or 0 for s in samples), default=None),
        "back_to_1_worker_after_run_seconds": back_t,
        "retired_workers_exited_after_run_seconds": round(gone_at - run_end, 2) if back_t is not None else None,
        "cooldown_seconds": cooldown,
        "workers_started_total": len(started),
        "scale_downs_before_run_end": sum(1 for d in decisions if "warm shutdown" in d["line"] and d["t"] < run_end),
        "autoscaler": decisions,
        "workers_started": started,
        "poll_errors": watcher.errors,
    })
    return result


def local_burst(plane: ControlPlane, tasks: int) -> dict:
    airflow = airflow_for(plane, LOCAL)
    cpu_before = hangar_side.environment_cpu_seconds(plane, LOCAL)
    load_at_trigger = load()
    run_id, t0 = trigger(airflow)
    run = wait_run(airflow, run_id)
    cpu = round(hangar_side.environment_cpu_seconds(plane, LOCAL) - cpu_before, 1)
    result = outcome(airflow, run_id, run, t0, tasks)
    result.update(loadavg_at_trigger=load_at_trigger, loadavg_at_end=load(), environment_cpu_seconds=cpu)
    return result


def attempt(what: str, fn, *args, **kwargs) -> dict:
    """One measured burst; a failure is recorded instead of losing the other runs."""
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a bench run must survive one bad run
        result = {"error": f"{type(exc).__name__}: {exc}"[:3000]}
    log(f"{what}: " + json.dumps({k: result.get(k) for k in (
        "run_seconds", "failed", "to_4_running_seconds", "to_4_ready_seconds", "back_to_1_worker_after_run_seconds",
        "loadavg_at_trigger", "error") if k in result}))
    return result


def prepare(plane: ControlPlane, name: str, dags: Path, tasks: int, *extra: str) -> dict:
    start = time.monotonic()
    plane.create(name, dags, "--env", f"HANGAR_BENCH_BURST_N={tasks}", *extra)
    seconds = round(time.monotonic() - start, 2)
    airflow = plane.airflow(name)
    airflow.wait_for_dag(DAG_ID, timeout=600)
    response = airflow.request("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    assert response.status_code == 200, response.text
    root = env_root(plane, name)
    return {"create_seconds": seconds, "config": effective_config(root), "root": root}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--cooldown", type=float, default=20.0, help="HANGAR_AUTOSCALE_COOLDOWN for the control plane")
    args = parser.parse_args()
    # SIGTERM becomes SystemExit, so every `finally` below runs and nothing is left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    report: dict = {
        "benchmark": "autoscale", "runs": args.runs, "tasks": args.tasks, "task_sleep_seconds": 1,
        "broker": re.sub(r"//[^@/]*@", "//***@", args.broker), "cooldown_seconds": args.cooldown,
        "cpu_count": os.cpu_count(), "load_average": {"start": load()},
        "started_at": datetime.now().isoformat(timespec="seconds"),
        "target": {"to_4_running_seconds": TARGET_TO_4_RUNNING_S, "failed": 0},
    }
    dags = hangar_side.dags_folder(BURST_DAG)
    celery_runs: list[dict] = []
    local_runs: list[dict] = []
    try:
        with control_plane(args.broker, args.cooldown) as plane:
            celery_env = prepare(plane, CELERY, dags, args.tasks, "--executor", "celery", "--min-workers", "1",
                                 "--max-workers", str(MAX_WORKERS))
            local_env = prepare(plane, LOCAL, dags, args.tasks, "--executor", "local")
            env = plane.get(CELERY)
            report["airflow_version"] = env["airflow_version"]
            report["environment_class"] = env["spec"]["environment_class"]
            report["runtimes"] = versions(plane)
            report["environments"] = {
                "celery": {k: v for k, v in celery_env.items() if k != "root"},
                "local": {k: v for k, v in local_env.items() if k != "root"},
            }
            log(f"environments up: {report['environments']}")
            for i in range(args.runs):
                celery_runs.append(attempt(f"run {i + 1} celery", celery_burst, plane, celery_env["root"], args.tasks,
                                           args.cooldown))
                time.sleep(SETTLE_S)
                local_runs.append(attempt(f"run {i + 1} local", local_burst, plane, args.tasks))
                time.sleep(SETTLE_S)
    finally:
        shutil.rmtree(dags, ignore_errors=True)
        report["load_average"]["end"] = load()
        report["finished_at"] = datetime.now().isoformat(timespec="seconds")

    keys_c = ("to_4_running_seconds", "to_4_ready_seconds", "desired_4_seconds", "run_seconds",
              "throughput_tasks_per_s", "failed", "max_workers_running", "back_to_1_worker_after_run_seconds",
              "retired_workers_exited_after_run_seconds", "environment_cpu_seconds", "max_concurrent_tasks",
              "median_queued_to_start_s", "median_task_duration_s", "first_started_s", "workers_started_total",
              "scale_downs_before_run_end")
    keys_l = ("run_seconds", "throughput_tasks_per_s", "failed", "environment_cpu_seconds", "max_concurrent_tasks",
              "median_queued_to_start_s", "median_task_duration_s", "first_started_s")
    report["celery"] = {"medians": {k: median(celery_runs, k) for k in keys_c}, "runs": celery_runs}
    report["local"] = {"medians": {k: median(local_runs, k) for k in keys_l}, "runs": local_runs}
    per_run = [ratio(c.get("throughput_tasks_per_s"), l.get("throughput_tasks_per_s"))
               for c, l in zip(celery_runs, local_runs)]
    report["ratio_celery_to_local_throughput"] = {
        "of_medians": ratio(report["celery"]["medians"]["throughput_tasks_per_s"],
                            report["local"]["medians"]["throughput_tasks_per_s"]),
        "per_run": per_run,
    }
    to4 = report["celery"]["medians"]["to_4_running_seconds"]
    failed = [r.get("failed") for r in celery_runs + local_runs]
    report["summary"] = {
        "to_4_running_median_seconds": to4,
        "to_4_running_met": to4 is not None and to4 <= TARGET_TO_4_RUNNING_S,
        "to_4_running_missed_by_seconds": round(max(to4 - TARGET_TO_4_RUNNING_S, 0.0), 2) if to4 is not None else None,
        "failed_tasks_all_runs": failed,
        "failed_met": all(f == 0 for f in failed),
        "celery_to_local_throughput": report["ratio_celery_to_local_throughput"]["of_medians"],
    }
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
