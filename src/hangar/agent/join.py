"""Joining: the one call `hangar worker join` makes, with the options it parsed.

It finds the worker token, makes sure no other join runs for the environment in the same home,
and runs a JoinedHost (hangar.agent.host) until it stops. SIGINT and SIGTERM ask for a warm
shutdown; a second one stops the worker at once, killing its tasks.

It returns once the worker has exited: after a stop, or when the token was revoked. It raises a
HangarError when the host cannot join (no or bad token, refused environment, unbuildable
runtime) or the worker keeps crashing; the CLI prints its message on one line and exits 1.
"""
from __future__ import annotations

import fcntl
import os
import signal
import socket
from pathlib import Path
from typing import IO

from hangar.agent import TOKEN_VARIABLE
from hangar.agent.client import ControlPlane
from hangar.agent.errors import JoinFailed
from hangar.agent.host import JoinedHost
from hangar.agent.logs import say
from hangar.errors import HangarError
from hangar.runtime import remote_worker
from hangar.runtime.airflow_config import EnvironmentLayout
from hangar.settings import Settings


def join(*, url: str, environment: str, token: str | None, token_file: Path | None, concurrency: int | None,
         home: Path | None, drain_timeout: float | None, refresh_seconds: float) -> None:
    """Join, run until stopped, return (its flags are declared in hangar.cli.workers)."""
    secret = worker_token(token, token_file)
    settings = Settings(**({"home": home} if home is not None else {}))
    layout = EnvironmentLayout(root=settings.home.expanduser().resolve() / "environments" / environment,
                               joined_host=True)
    layout.run.mkdir(parents=True, exist_ok=True)
    lock = lock_environment(layout, environment)
    plane = ControlPlane(url=url, token=secret, name=environment)
    host = JoinedHost(plane=plane, layout=layout, runtimes=settings.runtimes_dir,
                      hostname=remote_worker.host_name(socket.gethostname()), concurrency=concurrency,
                      drain_seconds=settings.worker_drain_seconds if drain_timeout is None else drain_timeout,
                      refresh_seconds=refresh_seconds, settings=settings,
                      address=remote_worker.reachable_address(url))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda number, _frame: host.request_stop(f"{signal.Signals(number).name} received"))
    try:
        host.run()
    except HangarError:  # refused, unreachable at the start, a runtime that does not build, a crashing worker
        if host.stop_reason is not None and not host.processes():
            say(f"stopped before a worker ran: {host.stop_reason}")  # Ctrl-C also ends uv's build with an error
            return
        raise
    finally:
        plane.close()
        lock.close()


def worker_token(token: str | None, token_file: Path | None) -> str:
    """--token, else --token-file, else HANGAR_WORKER_TOKEN; exactly one of the flags at most."""
    if token and token_file:
        raise JoinFailed("give the worker token once: --token or --token-file")
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise JoinFailed(f"cannot read the worker token from {token_file}: {exc.strerror}") from None
    token = token or os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        raise JoinFailed(f"a worker token is required: {TOKEN_VARIABLE}, --token-file or --token "
                         "(from `hangar worker token create NAME` on the control plane)")
    return token


def lock_environment(layout: EnvironmentLayout, name: str) -> IO[str]:
    """Held while the join runs: a second join of the same environment and home fails at once."""
    handle = open(layout.run / "join.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise JoinFailed(f"another `hangar worker join` runs for {name} with {layout.root}") from None
    return handle
