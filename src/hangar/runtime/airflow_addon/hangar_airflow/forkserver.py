"""One environment's pre-imported parent: Airflow imported once, every component forked from it.

    python -m hangar_airflow.forkserver --fd N [--entry MODULE:FUNCTION] [--preload MODULE ...]
                                        [--web-preload MODULE ...]

A fresh ``airflow scheduler`` spends most of its start-up CPU importing Airflow (see
bench/RESULTS.md). This process imports Airflow and the modules the components use under
the environment's configuration once, then forks a component per request, so each one
starts with those modules already in memory (as gunicorn's preload, or Airflow's own
LocalExecutor, do).

The control plane holds the other end of a socket pair (fd N). It sends one JSON line per
component and reads one JSON line back:

    -> {"argv": [...], "env": {...}, "cwd": ..., "log": ..., "pid_file": ..., "record": {...}}
    <- {"pid": 1234, "create_time": 1700000000.12}          or {"error": "..."}

and the first line it reads, once the imports are done, is {"ready": true}. When the
control plane goes (end of file), this process exits; the components it forked run on.

The web server's own modules (Airflow 3's REST API routes: about 2 s of CPU, most of the
api-server's start) are not imported before the ready line, so that the other components
are not kept waiting for them. The control plane asks for them when it knows the web
server comes later (an update replaces it last, after the others have proven
themselves), and they import while it waits:

    -> {"warm": "web"}
    <- {"warmed": "web", "missing": [...]}

Invariants:
- Nothing is connected before a fork: the imports open no database connection, thread or
  event loop (Airflow's ORM engine connects lazily); the child disposes of the engine it
  inherited and configures its own, and configures logging again under its own level.
- The child's pid file is on disk before the child runs a line of Airflow: the child
  waits on a pipe until this process has written it. So a control plane killed at any
  instant of the request leaves the component named by its pid file (or no component:
  a child whose parent died before the pid file exits at once).
- The child leads its own session, with the environment, folder and log the request
  names; HANGAR_SPAWN_ID is in its environment as in a spawned one.
- Children are not waited for here (SIGCHLD is ignored, so none stays a zombie); each
  child sets SIGCHLD back to its default before it runs Airflow.
- Never loads DAGs or plugins: plugins load lazily in the component, as they would after
  an exec.

Standard library, psutil and Airflow only: this runs under the runtime's Python, where
``hangar`` is not importable.
"""
from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import signal
import socket
import sys
from typing import Any

ENTRY = "airflow.__main__:main"
# What every component imports after `airflow` itself; a module this Airflow lacks is skipped.
PRELOAD = (
    "airflow",
    "airflow.__main__",
    "airflow.cli.cli_parser",
    "airflow.cli.commands.scheduler_command",
    "airflow.cli.commands.triggerer_command",
    "airflow.cli.commands.dag_processor_command",
    "airflow.cli.commands.api_server_command",
    "airflow.jobs.scheduler_job_runner",
    "airflow.jobs.triggerer_job_runner",
    "airflow.dag_processing.manager",
    "airflow.executors.local_executor",
    "airflow.api_fastapi.app",
    "airflow.sdk.execution_time.supervisor",
    "uvicorn",
)
# What the api-server imports before it answers, asked for with {"warm": "web"}: the routes are
# built at import (FastAPI analyses every endpoint's models), and nothing in them connects,
# starts a thread or loads a plugin. Airflow 2's webserver runs gunicorn, whose workers are
# fresh interpreters, so these are skipped there as missing.
WEB_PRELOAD = (
    "airflow.api_fastapi.core_api.routes.public",
    "airflow.api_fastapi.core_api.routes.ui",
    "airflow.api_fastapi.execution_api.app",
)


def preload(modules: list[str]) -> list[str]:
    """Import `modules`; return those this runtime does not have."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def _write_record(path: str, record: dict[str, Any]) -> None:
    """The pid file, as hangar.backend.pidfiles writes it: whole, fsynced and renamed."""
    tmp = path + ".tmp"
    with open(tmp, "w") as file:
        file.write(json.dumps(record))
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
    directory = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _create_time(pid: int) -> float:
    import psutil  # an Airflow dependency; imported here so the unit tests' Python needs it only when forking

    return psutil.Process(pid).create_time()


def _freeze() -> None:
    gc.collect()
    gc.freeze()  # what is imported now stays shared with every child (no copy on the collector's write)


def _warm(modules: list[str], name: str) -> dict[str, Any]:
    try:
        missing = preload(modules)
    except Exception as exc:  # the component imports them itself, and reports it in its own log
        return {"warmed": name, "error": f"{type(exc).__name__}: {exc}"}
    _freeze()
    return {"warmed": name, "missing": missing}


def serve(channel: socket.socket, warm: dict[str, list[str]] | None = None) -> dict | None:
    """Answer requests until the control plane goes (None) or this is a forked child (its request)."""
    reader = channel.makefile("rb")
    while True:
        line = reader.readline()
        if not line:
            return None
        try:
            request = json.loads(line)
            if "warm" in request:
                _reply(channel, _warm((warm or {}).get(request["warm"], []), request["warm"]))
                continue
            go_read, go_write = os.pipe()
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
        except (ValueError, OSError) as exc:
            _reply(channel, {"error": f"cannot fork: {exc}"})
            continue
        if pid == 0:
            os.close(go_write)
            reader.close()
            channel.close()
            if os.read(go_read, 1) != b"1":  # the parent died before the pid file was written
                os._exit(70)
            os.close(go_read)
            return request
        os.close(go_read)
        try:
            create_time = _create_time(pid)
            _write_record(request["pid_file"], {**request["record"], "pid": pid, "create_time": create_time})
            os.write(go_write, b"1")
            answer: dict[str, Any] = {"pid": pid, "create_time": create_time}
        except Exception as exc:  # the child exits when the pipe closes unwritten
            answer = {"error": f"cannot record the child: {exc}"}
        finally:
            os.close(go_write)
        _reply(channel, answer)


def _reply(channel: socket.socket, answer: dict) -> None:
    try:
        channel.sendall(json.dumps(answer).encode() + b"\n")
    except OSError:
        pass  # the control plane went; the next read ends the loop


def become(request: dict) -> None:
    """Turn this forked child into the component the request names (before its entry runs)."""
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = list(request["argv"])
    _renew_airflow()
    _title(" ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]]))  # "airflow scheduler"


def _title(title: str) -> None:
    """Name the process in ps. setproctitle finds the memory to write to at its first call, which
    fails once the environment has been replaced: so the fork server calls it first, before any fork."""
    try:
        import setproctitle  # an Airflow dependency
    except ImportError:
        return
    setproctitle.setproctitle(title)


def _renew_airflow() -> None:
    """What Airflow set up at import that depends on the process or on per-component settings."""
    settings = sys.modules.get("airflow.settings")
    if settings is None:
        return
    try:
        settings.dispose_orm(do_log=False)
    except TypeError:  # Airflow 2
        settings.dispose_orm()
    settings.configure_logging()  # the component's own log level (AIRFLOW__LOGGING__LOGGING_LEVEL)
    settings.configure_orm()


def _entry(spec: str):
    module, _, function = spec.partition(":")
    return getattr(importlib.import_module(module), function)


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hangar_airflow.forkserver")
    parser.add_argument("--fd", required=True, type=int)
    parser.add_argument("--entry", default=ENTRY)
    parser.add_argument("--preload", nargs="*", default=list(PRELOAD))
    parser.add_argument("--web-preload", nargs="*", default=list(WEB_PRELOAD))
    options = parser.parse_args(args)
    channel = socket.socket(fileno=options.fd)
    missing = preload(options.preload)
    entry = _entry(options.entry)
    if missing:
        print(f"hangar: fork server: not in this runtime: {', '.join(missing)}", file=sys.stderr)
    _title(f"hangar_airflow.forkserver {os.getcwd()}")
    _freeze()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    _reply(channel, {"ready": True, "pid": os.getpid()})
    request = serve(channel, {"web": options.web_preload})
    if request is None:
        return 0
    become(request)
    result = entry()
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
