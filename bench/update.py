"""Updates: seconds from `hangar env update` to the change taking effect, next to what the
same change costs with plain `airflow standalone` (a restart) on the same machine.

Run: .venv/bin/python bench/update.py --runs 3
Prints one JSON document: every run, medians, targets (met or missed, and by how much),
ratios to standalone, and the load average at the start and end and at each phase.

Measured on one Hangar environment (class small, the example DAG), each over --runs runs:

1. configuration only, back to AVAILABLE: from starting the command
   `hangar env update NAME --config ...` to the environment being AVAILABLE with
   last_update SUCCESS for the new revision (native API polled every 0.1 s). Two keys:
   `scheduler.task_queued_timeout` (only the scheduler reads it: one restart) and
   `core.dagbag_import_timeout` (every component reads [core]: all restart, one at a time).
   The CLI's own start (a Python interpreter, ~1 s, more under load) is inside the figure;
   `cli_seconds` and `server_seconds` (the update's own operation, first step to done) show
   the split.
2. DAGs only, visible in Airflow: from starting `hangar env update NAME --dags NEWFOLDER`
   (a copy of the current folder plus a new DAG file with a unique dag_id) to
   GET /api/v2/dags/{dag_id} answering 200 with the environment's token (polled every 0.1 s);
   and, second figure, from a new DAG file appearing in the current DAGs folder (written
   aside, renamed in) to the same 200.
3. one small requirement, warm package cache: from starting
   `hangar env update NAME --requirements req.txt` to AVAILABLE as in 1. Each run adds a
   different small pure-Python package, so every run needs a new runtime. How the cache is
   warmed: right before each run, the exact install Hangar does for that runtime
   (apache-airflow[postgres]==V, psycopg2-binary and the requirement) goes into a throw-away
   venv outside HANGAR_HOME with the same uv binary and cache. uv's package cache and index
   responses are then warm; Hangar's runtime cache (HANGAR_HOME/runtimes) has never seen the
   requirement set.

Baseline, same run, same Airflow install (the packages of Hangar's runtime, frozen and
installed into a venv of its own), same embedded PostgreSQL build, same DAG: one
`airflow standalone` on a migrated database, then
* restart  - SIGTERM its process group, wait until it is gone, start it again with the new
             setting (AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT), until /api/v2/monitor/health
             answers with the metadatabase healthy and a scheduler heartbeat newer than the
             stop (an old heartbeat would pass Airflow's own check for 30 s).
* install and restart - `uv pip install` of the same requirement into that venv, then a
             restart as above.
Ratios are Hangar's median over standalone's median (1 and 3). A ratio below 1 means Hangar
is faster.

Cleanup: the environment is deleted, the control plane and its processes stopped, the
standalone process group killed and the embedded PostgreSQL stopped, also on errors and on
SIGTERM. There are no thresholds here: targets are reported, never asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import baseline  # noqa: E402
import hangar_side  # noqa: E402

from hangar.runtime.venvs import base_packages, clean_env, find_uv_bin  # noqa: E402
from hangar.settings import Settings  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dags" / "hello_taskflow.py"
ENV = "upd"
POLL_S = 0.1
SETTLE_S = 3  # between runs, untimed: a real update does not follow the previous one within a second
UPDATE_TIMEOUT_S = 900
VISIBLE_TIMEOUT_S = 300
TARGETS = {"config": 10.0, "dags": 5.0, "requirements": 30.0}
# Small pure-Python packages that apache-airflow[postgres] does not already pull in; run i adds
# REQUIREMENTS[i], so every run builds a runtime nobody built before.
REQUIREMENTS = ["inflection", "xmltodict", "tomli-w", "humanize", "jmespath", "toolz", "ordered-set", "wcwidth"]
SCHEDULER_KEY, CORE_KEY = "scheduler.task_queued_timeout", "core.dagbag_import_timeout"
FAILED = {"UPDATE_FAILED", "CREATE_FAILED", "UNAVAILABLE", "DELETED"}

NEW_DAG = '''"""Added by bench/update.py."""
from __future__ import annotations

import pendulum
from airflow.sdk import dag, task


@dag(dag_id="{dag_id}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def added():
    @task
    def hello() -> int:
        return 1

    hello()


added()
'''


def log(msg: str) -> None:
    print(f"[update] {msg}", file=sys.stderr, flush=True)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def median(runs: list[dict], key: str = "seconds") -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 2) if values else None


def verdict(value: float | None, target: float) -> dict:
    if value is None:
        return {"target_seconds": target, "met": False, "missed_by_seconds": None}
    return {"target_seconds": target, "met": value <= target,
            "missed_by_seconds": round(max(value - target, 0.0), 2)}


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def attempt(what: str, fn, *args, plane=None, **kwargs) -> dict:
    """One measured run; a failure is recorded (with the control plane's last traceback, if
    any) instead of losing the others."""
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a bench run must survive one bad run
        result = {"error": f"{type(exc).__name__}: {exc}"[:3000]}
        if plane is not None:
            result["control_plane_traceback"] = last_traceback(plane)
    result.setdefault("loadavg_1m", round(os.getloadavg()[0], 2))
    log(f"{what}: {result.get('seconds', result.get('error'))}")
    return result


# --------------------------------------------------------------------------- Hangar side


def last_traceback(plane) -> str | None:
    """The last traceback in the control plane's log: why an update failed, beyond its message."""
    try:
        text = plane.log.read_text(errors="replace")
    except OSError:
        return None
    at = text.rfind("Traceback (most recent call last)")
    return text[at:at + 4000] if at >= 0 else None


def _when(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def operation(plane, revision: int) -> dict:
    """The update's own record: its steps, seconds from its start, and its duration."""
    with sqlite3.connect(plane.home / "state" / "hangar.db") as db:
        row = db.execute(
            "SELECT o.started_at, o.steps FROM operations o JOIN environments e ON e.id = o.environment_id "
            "WHERE e.name = ? AND e.status != 'DELETED' AND o.revision = ? ORDER BY o.id DESC LIMIT 1",
            (ENV, revision),
        ).fetchone()
    if row is None:
        return {}
    started = _when(row[0])
    steps = [{"t": round((_when(s["at"]) - started).total_seconds(), 2), "step": s["step"][:160]}
             for s in json.loads(row[1]) if "at" in s]
    done = next((s["t"] for s in reversed(steps) if s["step"] == "done"), None)
    return {"server_seconds": done, "steps": steps}


def send_update(plane, *args: str) -> tuple[int, float]:
    """`hangar env update ENV ARGS --json` without --wait: the new revision and the CLI's seconds."""
    start = time.monotonic()
    result = plane.cli("env", "update", ENV, *args, "--json")
    return json.loads(result.stdout)["revision"], time.monotonic() - start


def wait_applied(plane, revision: int, start: float, timeout: float = UPDATE_TIMEOUT_S) -> float:
    """Seconds from `start` until AVAILABLE with last_update SUCCESS for `revision`."""
    deadline = start + timeout
    env: dict = {}
    while time.monotonic() < deadline:
        env = plane.api("GET", f"/api/v1/environments/{ENV}").json()
        last = env.get("last_update") or {}
        if last.get("revision") == revision:
            if env["status"] == "AVAILABLE" and last.get("status") == "SUCCESS":
                return time.monotonic() - start
            if last.get("status") == "FAILED" or env["status"] in FAILED:
                raise RuntimeError(f"revision {revision} ended {env['status']}/{last.get('status')}: "
                                   f"{(last.get('error') or {}).get('message') or env.get('status_reason')}")
        time.sleep(POLL_S)
    raise TimeoutError(f"revision {revision} not applied after {timeout}s: {env.get('status')} {env.get('status_reason')}")


def timed_update(plane, *args: str) -> dict:
    start = time.monotonic()
    revision, cli_seconds = send_update(plane, *args)
    seconds = wait_applied(plane, revision, start)
    return {"seconds": round(seconds, 2), "cli_seconds": round(cli_seconds, 2), "revision": revision,
            **operation(plane, revision)}


def airflow_client(plane) -> httpx.Client:
    airflow = plane.airflow(ENV)
    return httpx.Client(base_url=airflow.api, headers={"Authorization": f"Bearer {airflow.token}"}, timeout=10)


def wait_visible(client: httpx.Client, dag_id: str, start: float, *, plane=None, revision: int | None = None,
                 timeout: float = VISIBLE_TIMEOUT_S) -> float:
    """Seconds from `start` until GET /dags/{dag_id} answers 200. With a revision, the update is
    checked every second too, so a failed update ends the wait with its error."""
    deadline, checked = start + timeout, start
    while time.monotonic() < deadline:
        try:
            if client.get(f"/dags/{dag_id}").status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass  # the api-server is busy or restarting: not yet
        if revision is not None and time.monotonic() - checked >= 1:
            checked = time.monotonic()
            env = plane.api("GET", f"/api/v1/environments/{ENV}").json()
            last = env.get("last_update") or {}
            if last.get("revision") == revision and (last.get("status") == "FAILED" or env["status"] in FAILED):
                raise RuntimeError(f"revision {revision} ended {env['status']}/{last.get('status')}: "
                                   f"{(last.get('error') or {}).get('message') or env.get('status_reason')}")
        time.sleep(POLL_S)
    state = ""
    if plane is not None:
        env = plane.api("GET", f"/api/v1/environments/{ENV}").json()
        state = f"; the environment is {env['status']} ({env.get('status_reason')}), last_update {env.get('last_update')}"
    raise TimeoutError(f"DAG {dag_id} not visible after {timeout}s{state}")


def config_run(plane, key: str, value: str, others: dict[str, str]) -> dict:
    pairs = [f"{k}={v}" for k, v in {**others, key: value}.items()]
    flags = [x for pair in pairs for x in ("--config", pair)]
    return {"config": pairs, **timed_update(plane, *flags)}


def dag_file(folder: Path, dag_id: str) -> Path:
    """Write a new DAG file aside and rename it in, so Airflow never lists a half-written file."""
    aside = folder / f".{dag_id}.tmp"
    aside.write_text(NEW_DAG.format(dag_id=dag_id))
    final = folder / f"{dag_id}.py"
    aside.replace(final)
    return final


def dags_folder_run(plane, client: httpx.Client, current: Path, made: list[Path]) -> dict:
    dag_id = f"bench_folder_{uuid.uuid4().hex[:8]}"
    folder = Path(tempfile.mkdtemp(prefix="hangar-bench-dags-"))
    folder.chmod(0o755)  # an isolated environment's own user reads it (mkdtemp makes it 0700)
    made.append(folder)
    for file in current.glob("*.py"):
        shutil.copy(file, folder / file.name)
    dag_file(folder, dag_id)
    start = time.monotonic()
    revision, cli_seconds = send_update(plane, "--dags", str(folder))
    visible = wait_visible(client, dag_id, start, plane=plane, revision=revision)
    applied = wait_applied(plane, revision, start)
    return {"seconds": round(visible, 2), "dag_id": dag_id, "cli_seconds": round(cli_seconds, 2),
            "available_seconds": round(applied, 2), "revision": revision, "folder": str(folder),
            **operation(plane, revision)}


def dags_in_place_run(client: httpx.Client, folder: Path) -> dict:
    dag_id = f"bench_inplace_{uuid.uuid4().hex[:8]}"
    start = time.monotonic()
    dag_file(folder, dag_id)
    return {"seconds": round(wait_visible(client, dag_id, start), 2), "dag_id": dag_id}


def warm_package_cache(requirement: str, airflow_version: str, python: str) -> float:
    """Hangar's install for this runtime into a throw-away venv outside HANGAR_HOME: it fills
    uv's package cache and index responses, and leaves Hangar's runtime cache untouched."""
    start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="hangar-bench-warm-"))
    try:
        uv = [find_uv_bin()]
        env = {**clean_env(), "NO_COLOR": "1"}
        subprocess.run([*uv, "venv", "--quiet", "--python", python, str(work / "venv")], env=env, check=True,
                       capture_output=True, timeout=600)
        subprocess.run([*uv, "pip", "install", "--quiet", "--python", str(work / "venv" / "bin" / "python"),
                        *base_packages(airflow_version), requirement], env=env, check=True, capture_output=True,
                       timeout=900)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return round(time.monotonic() - start, 2)


def requirements_run(plane, requirement: str, airflow_version: str, python: str, workdir: Path) -> dict:
    warm = warm_package_cache(requirement, airflow_version, python)
    req = workdir / f"requirements-{requirement}.txt"
    req.write_text(f"{requirement}\n")
    return {"requirement": requirement, "cache_warming_seconds": warm, **timed_update(plane, "--requirements", str(req))}


def plan(plane, *args: str) -> dict:
    result = json.loads(plane.cli("env", "update", ENV, *args, "--dry-run", "--json").stdout)
    return {"kind": result["kind"], "restart": result["restart"], "changed": result["changed"]}


def hangar_measurements(plane, args, report: dict, phases: dict, made: list[Path], workdir: Path,
                        holder: dict) -> None:
    """Every Hangar figure; holder["runtime_python"] is the python of the environment's first runtime."""
    dags = hangar_side.dags_folder(EXAMPLE)
    made.append(dags)
    phases["create"] = load()
    created = hangar_side.create_seconds(plane, ENV, dags)
    env = plane.get(ENV)
    airflow_version = env["airflow_version"]
    report["airflow_version"] = airflow_version
    report["setup"] = {"create_seconds": created["seconds"], "environment_class": env["spec"].get("environment_class")}
    holder["runtime_python"] = next(Path(plane.env["HANGAR_RUNTIMES_DIR"]).glob("*/bin/python"))
    python = Settings.model_fields["runtime_python"].default

    report["plans"] = {
        "config_scheduler": plan(plane, "--config", f"{SCHEDULER_KEY}=601"),
        "config_core": plan(plane, "--config", f"{CORE_KEY}=31"),
        "dags": plan(plane, "--dags", str(EXAMPLE.parent)),
    }
    probe = workdir / "requirements-probe.txt"
    probe.write_text(f"{REQUIREMENTS[0]}\n")
    report["plans"]["requirements"] = plan(plane, "--requirements", str(probe))

    phases["config_scheduler"] = load()
    runs = []
    for i in range(args.runs):
        time.sleep(SETTLE_S)
        runs.append(attempt(f"config {SCHEDULER_KEY} {i + 1}", config_run, plane, SCHEDULER_KEY, str(610 + 10 * i), {},
                            plane=plane))
    scheduler_value = str(610 + 10 * (args.runs - 1))
    report["config_scheduler"] = {"key": SCHEDULER_KEY, "median_seconds": median(runs),
                                  "median_server_seconds": median(runs, "server_seconds"),
                                  **verdict(median(runs), TARGETS["config"]), "runs": runs}

    phases["config_core"] = load()
    runs = []
    for i in range(args.runs):
        time.sleep(SETTLE_S)
        runs.append(attempt(f"config {CORE_KEY} {i + 1}", config_run, plane, CORE_KEY, str(31 + i),
                            {SCHEDULER_KEY: scheduler_value}, plane=plane))
    report["config_core"] = {"key": CORE_KEY, "median_seconds": median(runs),
                             "median_server_seconds": median(runs, "server_seconds"),
                             **verdict(median(runs), TARGETS["config"]), "runs": runs}

    phases["dags"] = load()
    client = airflow_client(plane)
    try:
        current = Path(plane.get(ENV)["spec"]["dags"])
        runs = []
        for i in range(args.runs):
            time.sleep(SETTLE_S)
            result = attempt(f"dags new folder {i + 1}", dags_folder_run, plane, client, current, made,
                             plane=plane)
            current = Path(result.get("folder", current))
            runs.append(result)
        report["dags_new_folder"] = {"median_seconds": median(runs),
                                     "median_available_seconds": median(runs, "available_seconds"),
                                     **verdict(median(runs), TARGETS["dags"]), "runs": runs}
        # the folder Airflow reads now: where the environment's dags_folder link points
        current = Path(os.readlink(next(plane.home.glob("environments/*/dags-current"))))
        runs = []
        for i in range(args.runs):
            time.sleep(SETTLE_S)
            runs.append(attempt(f"dags in place {i + 1}", dags_in_place_run, client, current))
        report["dags_in_place"] = {"folder": str(current), "median_seconds": median(runs),
                                   **verdict(median(runs), TARGETS["dags"]), "runs": runs}
    finally:
        client.close()

    phases["requirements"] = load()
    runs = []
    for i in range(args.runs):
        time.sleep(SETTLE_S)
        runs.append(attempt(f"requirements +{REQUIREMENTS[i]}", requirements_run, plane, REQUIREMENTS[i],
                            airflow_version, python, workdir, plane=plane))
    report["requirements"] = {
        "cache": ("warm: before each run, the same uv install (Airflow, psycopg2-binary, the requirement) into a "
                  "throw-away venv outside HANGAR_HOME; Hangar's runtime cache has never seen the set"),
        "median_seconds": median(runs), "median_server_seconds": median(runs, "server_seconds"),
        **verdict(median(runs), TARGETS["requirements"]), "runs": runs,
    }


# --------------------------------------------------------------------------- standalone side


class Restartable:
    """One `airflow standalone` on a fixed AIRFLOW_HOME and database, stopped and started again."""

    def __init__(self, airflow_bin: Path, workdir: Path, pg_url: str, dags_dir: Path):
        self.airflow_bin, self.pg_url, self.dags_dir = airflow_bin, pg_url, dags_dir
        self.home = workdir / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = baseline.free_port()
        self.current: baseline.Standalone | None = None

    def start(self, extra_env: dict[str, str] | None = None) -> baseline.Standalone:
        env = {**baseline.standalone_env(self.airflow_bin, self.home, self.pg_url, self.port, self.dags_dir),
               **(extra_env or {})}
        proc = subprocess.Popen([str(self.airflow_bin), "standalone"], env=env, cwd=self.home,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.current = baseline.Standalone(proc, time.monotonic(), self.home, self.port)
        return self.current

    def stop(self) -> float:
        if self.current is None:
            return 0.0
        seconds, _ = baseline.kill_process_group(self.current.proc)
        self.current = None
        return seconds

    def restart(self, extra_env: dict[str, str] | None = None) -> dict:
        start = time.monotonic()
        stop_seconds = self.stop()
        since = datetime.now(timezone.utc)
        sa = self.start(extra_env)
        marks = wait_fresh(sa, since)
        return {"seconds": round(time.monotonic() - start, 2), "stop_seconds": round(stop_seconds, 2),
                "start_to_healthy_seconds": marks["healthy"], "all_components_fresh": marks.get("all_fresh")}


def wait_fresh(sa: baseline.Standalone, since: datetime, timeout: float = baseline.BOOT_TIMEOUT_S) -> dict:
    """Seconds from start until the health endpoint shows the metadatabase healthy and a scheduler
    heartbeat after `since`; then, for at most 30 s more, until every component's heartbeat is."""
    marks: dict = {}
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            sa.check_alive()
            health = baseline.poll_json(client, f"{sa.base_url}/api/v2/monitor/health")
            if health is not None:
                fresh = {}
                for name, value in health.items():
                    beat = next((v for k, v in (value or {}).items() if k.endswith("heartbeat")), None)
                    fresh[name] = (value or {}).get("status") == "healthy" and (
                        beat is None if name == "metadatabase" else bool(beat) and _when(beat) > since)
                if fresh.get("metadatabase") and fresh.get("scheduler"):
                    marks.setdefault("healthy", round(sa.elapsed(), 2))
                if all(fresh.values()):
                    marks["all_fresh"] = round(sa.elapsed(), 2)
                    return marks
                if "healthy" in marks and sa.elapsed() - marks["healthy"] > 30:
                    return marks
            time.sleep(baseline.POLL_S)
    raise TimeoutError(f"standalone not healthy after {timeout}s (marks so far: {marks})")


def install_and_restart(standalone: Restartable, python: Path, requirement: str) -> dict:
    start = time.monotonic()
    subprocess.run([find_uv_bin(), "pip", "install", "--quiet", "--python", str(python), requirement],
                   env={**clean_env(), "NO_COLOR": "1"}, check=True, capture_output=True, timeout=600)
    install = time.monotonic() - start
    restart = standalone.restart()
    return {"seconds": round(time.monotonic() - start, 2), "requirement": requirement,
            "install_seconds": round(install, 2), "restart_seconds": restart["seconds"], "restart": restart}


def standalone_measurements(args, report: dict, phases: dict, frozen: str, interpreter: Path, workdir: Path) -> None:
    phases["standalone_setup"] = load()
    workdir.mkdir(parents=True, exist_ok=True)
    uv, env = find_uv_bin(), {**clean_env(), "NO_COLOR": "1"}
    (workdir / "frozen.txt").write_text(frozen)
    venv = workdir / "venv"
    start = time.monotonic()
    subprocess.run([uv, "venv", "--quiet", "--python", str(interpreter), str(venv)], env=env,
                   check=True, capture_output=True, timeout=600)
    subprocess.run([uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", str(venv / "bin" / "python"),
                    "-r", str(workdir / "frozen.txt")], env=env, check=True, capture_output=True, timeout=1800)
    setup = {"venv_seconds": round(time.monotonic() - start, 2), "packages": len(frozen.splitlines())}
    pgdata = workdir / "pgdata"
    dags = workdir / "dags"
    dags.mkdir()
    shutil.copy(EXAMPLE, dags / EXAMPLE.name)
    standalone = None
    try:
        standalone = Restartable(venv / "bin" / "airflow", workdir, baseline.embedded_pg(pgdata), dags)
        sa = standalone.start()
        setup["first_boot_seconds"] = wait_fresh(sa, datetime.fromtimestamp(0, timezone.utc)).get("healthy")
        report["standalone"] = {"setup": setup}
        phases["standalone_restart"] = load()
        runs = []
        for i in range(args.runs):
            time.sleep(SETTLE_S)
            extra = {"AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": str(610 + 10 * i)}
            runs.append(attempt(f"standalone restart {i + 1}", standalone.restart, extra))
        report["standalone"]["restart"] = {"median_seconds": median(runs), "runs": runs}
        phases["standalone_install"] = load()
        runs = []
        for i in range(args.runs):
            time.sleep(SETTLE_S)
            runs.append(attempt(f"standalone install +{REQUIREMENTS[i]} and restart", install_and_restart,
                                standalone, venv / "bin" / "python", REQUIREMENTS[i]))
        report["standalone"]["install_and_restart"] = {"median_seconds": median(runs), "runs": runs}
    finally:
        if standalone is not None:
            standalone.stop()
        baseline.stop_embedded_pg(pgdata)


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-fork", action="store_true",
                        help="every component a fresh interpreter (HANGAR_FORK_COMPONENTS=false)")
    args = parser.parse_args()
    if not 1 <= args.runs <= len(REQUIREMENTS):
        parser.error(f"--runs must be between 1 and {len(REQUIREMENTS)}")
    # SIGTERM becomes SystemExit, so every `finally` below runs and nothing is left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    phases: dict = {}
    report: dict = {"benchmark": "update", "runs": args.runs, "fork_server": not args.no_fork, "cpu_count": os.cpu_count(),
                    "load_average": {"start": load(), "phases": phases}, "targets_seconds": TARGETS,
                    "documented_elsewhere": {"mwaa_update": "10-30 minutes", "composer_dag_change_visible": "3-5 minutes"}}
    made: list[Path] = []
    holder: dict = {}
    workdir = Path(tempfile.mkdtemp(prefix="hangar-bench-update-"))
    try:
        with hangar_side.control_plane(hangar_side.NO_FORK if args.no_fork else None) as plane:
            try:
                hangar_measurements(plane, args, report, phases, made, workdir, holder)
            finally:
                if "runtime_python" in holder:  # the standalone gets this runtime's packages
                    holder["frozen"] = subprocess.run(
                        [find_uv_bin(), "pip", "freeze", "--python", str(holder["runtime_python"])],
                        env=clean_env(), capture_output=True, text=True, timeout=120).stdout
                    holder["interpreter"] = holder["runtime_python"].resolve()
                try:
                    plane.cli("env", "delete", ENV, "--wait", check=False, timeout=300)
                except Exception as exc:  # noqa: BLE001 - cleanup goes on; control_plane kills what is left
                    log(f"delete {ENV}: {exc}")
        # the control plane is gone: the standalone has the machine to itself, like Hangar had
        standalone_measurements(args, report, phases, holder["frozen"], holder["interpreter"],
                                workdir / "standalone")
    finally:
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
    report["load_average"]["end"] = load()

    restart = (report.get("standalone") or {}).get("restart", {}).get("median_seconds")
    install = (report.get("standalone") or {}).get("install_and_restart", {}).get("median_seconds")
    report["ratios_hangar_to_standalone"] = {
        "config_scheduler": ratio(report.get("config_scheduler", {}).get("median_seconds"), restart),
        "config_core": ratio(report.get("config_core", {}).get("median_seconds"), restart),
        "requirements": ratio(report.get("requirements", {}).get("median_seconds"), install),
    }
    report["summary"] = {
        name: {k: report[name][k] for k in ("median_seconds", "target_seconds", "met", "missed_by_seconds")}
        for name in ("config_scheduler", "config_core", "dags_new_folder", "dags_in_place", "requirements")
        if name in report
    }
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
