"""GetEnvironment latency through the real boto3 `mwaa` client, 20 concurrent clients.

Run: uv run --extra test python bench/api.py [--clients 20] [--calls 100 | --duration 20] [--real]

A control plane is started exactly as in the tests (hangar_side.control_plane()), one
environment is created through boto3 and left to settle, then every client (one thread
and one boto3 client each, all sharing one Viewer access key) calls GetEnvironment in a
loop: a fixed number of calls per client (--calls), or for a bounded time (--duration,
capped at 300 s). A few warm-up calls per client open the connections and are not
measured. A single-client serial phase runs first as a reference point.

By default the environment is a cheap one: AirflowVersion "3.3.99" fails fast
(CREATE_FAILED, AIRFLOW_VERSION_NOT_FOUND) and GetEnvironment answers it like any other.
--real creates an AVAILABLE Airflow 3.3.2 environment instead (slower to set up; the
control plane then also supervises real processes during the measurement).

Prints JSON: count, errors, p50/p90/p99/max/mean latency (ms), throughput (calls/s), CPU
ms per call spent by the control plane and by the clients, and the command line. Client and server share this machine's CPUs, so client-side time
(SigV4 signing, botocore parsing, the GIL across 20 threads) is part of every number.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hangar_side  # noqa: E402  (puts the repository on sys.path)

os.environ["AWS_DISABLE_HOST_PREFIX_INJECTION"] = "true"  # before any boto3 client is made

import psutil  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from tests.e2e.harness import EXAMPLES, wait_for  # noqa: E402
from tests.e2e.mwaa_client import mwaa  # noqa: E402

NAME = "apibench"
BUCKET = "api-bench"
ROLE = "arn:aws:iam::123456789012:role/hangar-bench"
NETWORK = {"SubnetIds": ["subnet-a", "subnet-b"], "SecurityGroupIds": ["sg-1"]}
MAX_DURATION = 300.0
WARMUP_CALLS = 5


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def summarize(latencies: list[float], errors: Counter, wall: float) -> dict:
    ordered = sorted(latencies)
    ms = lambda s: round(s * 1000, 2)  # noqa: E731
    return {
        "count": len(ordered),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "p50_ms": ms(percentile(ordered, 50)),
        "p90_ms": ms(percentile(ordered, 90)),
        "p99_ms": ms(percentile(ordered, 99)),
        "max_ms": ms(ordered[-1]) if ordered else None,
        "mean_ms": ms(statistics.fmean(ordered)) if ordered else None,
        "wall_seconds": round(wall, 3),
        "throughput_per_s": round(len(ordered) / wall, 1) if wall > 0 else None,
    }


def create_environment(plane, admin_key: dict, *, real: bool) -> dict:
    plane.cli("bucket", "create", BUCKET)
    plane.cli("bucket", "sync", str(EXAMPLES), f"s3://{BUCKET}/dags")
    admin = mwaa(plane.url, admin_key)
    admin.create_environment(Name=NAME, ExecutionRoleArn=ROLE, SourceBucketArn=f"arn:aws:s3:::{BUCKET}",
                             DagS3Path="dags", NetworkConfiguration=NETWORK,
                             AirflowVersion="3.3.2" if real else "3.3.99")
    # settled first, so the reconciler is idle while we measure
    env = wait_for(lambda: (e := admin.get_environment(Name=NAME)["Environment"])["Status"] not in ("CREATING",) and e,
                   timeout=900, interval=0.5, what=f"{NAME} to settle")
    expected = "AVAILABLE" if real else "CREATE_FAILED"
    if env["Status"] != expected:
        raise RuntimeError(f"{NAME} ended {env['Status']}, expected {expected}: {env.get('LastUpdate')}")
    return env


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def run_clients(clients: list, *, calls: int | None, duration: float | None, server: psutil.Process) -> dict:
    latencies: list[list[float]] = [[] for _ in clients]
    errors: list[Counter] = [Counter() for _ in clients]
    barrier = threading.Barrier(len(clients) + 1)

    def worker(index: int) -> None:
        client, mine, bad = clients[index], latencies[index], errors[index]
        for _ in range(WARMUP_CALLS):
            try:
                client.get_environment(Name=NAME)
            except Exception:  # counted in the measured phase, if it persists
                pass
        barrier.wait()
        done, until = 0, time.perf_counter() + (duration or 0)
        while (calls is not None and done < calls) or (calls is None and time.perf_counter() < until):
            start = time.perf_counter()
            try:
                client.get_environment(Name=NAME)
            except ClientError as exc:
                bad[exc.response["Error"]["Code"]] += 1
            except Exception as exc:  # connection errors and the like
                bad[type(exc).__name__] += 1
            else:
                mine.append(time.perf_counter() - start)
            done += 1

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    me = psutil.Process()
    barrier.wait()  # every client warmed up; go
    server_cpu, client_cpu = cpu_seconds(server), cpu_seconds(me)
    started = time.perf_counter()
    for thread in threads:
        thread.join(timeout=(duration or MAX_DURATION) + 120)
    wall = time.perf_counter() - started
    server_cpu, client_cpu = cpu_seconds(server) - server_cpu, cpu_seconds(me) - client_cpu
    if any(thread.is_alive() for thread in threads):
        raise RuntimeError("a client thread did not finish in time")
    result = summarize([x for xs in latencies for x in xs], sum(errors, Counter()), wall)
    calls_made = max(1, result["count"] + result["errors"])
    # where the CPU went: the control plane's process vs. this process's boto3 clients
    result["cpu_ms_per_call"] = {"server": round(server_cpu * 1000 / calls_made, 2),
                                 "clients": round(client_cpu * 1000 / calls_made, 2)}
    result["cpu_utilisation"] = {"server": round(server_cpu / wall, 2), "clients": round(client_cpu / wall, 2)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    bound = parser.add_mutually_exclusive_group()
    bound.add_argument("--calls", type=int, default=None, help="GetEnvironment calls per client (default 100)")
    bound.add_argument("--duration", type=float, default=None, help=f"seconds per client (at most {MAX_DURATION:.0f})")
    parser.add_argument("--serial-calls", type=int, default=200, help="calls of the single-client reference phase")
    parser.add_argument("--real", action="store_true", help="measure against an AVAILABLE Airflow 3.3.2 environment")
    args = parser.parse_args()
    if args.duration is not None:
        args.duration = min(max(args.duration, 1.0), MAX_DURATION)
    elif args.calls is None:
        args.calls = 100

    report: dict = {
        "benchmark": "api_get_environment",
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "clients": args.clients,
        "calls_per_client": args.calls,
        "duration_seconds": args.duration,
        "cpus": os.cpu_count(),
        "target_p99_ms": 50,
    }
    with hangar_side.control_plane() as plane:
        keys = {role: json.loads(plane.cli("access-key", "create", "--role", role, "--json").stdout)
                for role in ("Admin", "Viewer")}
        env = create_environment(plane, keys["Admin"], real=args.real)
        report["environment"] = {"name": NAME, "airflow_version": env["AirflowVersion"], "status": env["Status"]}

        server = psutil.Process(plane.process.pid)
        serial_client = mwaa(plane.url, keys["Viewer"])
        report["serial_single_client"] = run_clients([serial_client], calls=args.serial_calls, duration=None,
                                                     server=server)

        # boto3's default session is not thread-safe for making clients: make them all here
        clients = [mwaa(plane.url, keys["Viewer"]) for _ in range(args.clients)]
        report["concurrent"] = run_clients(clients, calls=args.calls, duration=args.duration, server=server)
        report["machine_load_average_1m"] = round(os.getloadavg()[0], 2)
    report["p99_target_met"] = report["concurrent"]["p99_ms"] <= report["target_p99_ms"] \
        and report["concurrent"]["errors"] == 0
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
