"""`hangar worker`: hosts that join a Celery environment's workers, and their tokens.

Clients of the HTTP API like every other command. `hangar worker token create` prints the
token this once; afterwards the API knows only its hash. `hangar worker join` is the exception:
it parses its options and runs this host's agent (hangar.agent.join). The agent pulls in the
runtime builder and the process supervisor, so it is imported only when the command runs and
every other command starts without it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from hangar.agent import REFRESH_SECONDS, TOKEN_VARIABLE
from hangar.cli.client import call, fail
from hangar.cli.output import show
from hangar.errors import HangarError

worker_app = typer.Typer(no_args_is_help=True, help="Hosts that join a Celery environment's workers.")
token_app = typer.Typer(no_args_is_help=True, help="Tokens hosts join an environment with.")
worker_app.add_typer(token_app, name="token")
out = Console()


def _path(name: str, rest: str) -> str:
    return f"/api/v1/environments/{name}/{rest}"


@token_app.command("create")
def token_create(
    name: str,
    label: Optional[str] = typer.Option(None, "--label", help="what the token is for, e.g. the host's name"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Issue a token for hosts to join NAME's workers (Admin); it is shown this once."""
    created = call("POST", _path(name, "worker-tokens"), json={"label": label})
    if as_json:
        print(json.dumps(created))
        return
    out.print(f"id:    {created['id']}\ntoken: {created['token']}\n"
              "the token is shown this once: keep it where the joining host can read it", markup=False, soft_wrap=True)


@token_app.command("list")
def token_list(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """NAME's worker tokens (never the tokens themselves)."""
    show(call("GET", _path(name, "worker-tokens")), as_json, lambda tokens: _print_worker_tokens(name, tokens))


def _print_worker_tokens(name: str, tokens: list[dict]) -> None:
    if not tokens:
        out.print(f"{name} has no worker tokens", markup=False)
        return
    table = Table("id", "label", "state", "hosts", "created", "last used", box=None)
    for t in tokens:
        table.add_row(t["id"], t["label"] or "-", "revoked" if t["revoked"] else "active", str(t["hosts"]),
                      _time(t["created_at"]), _time(t["last_used_at"]))
    out.print(table)


@token_app.command("revoke")
def token_revoke(name: str, token_id: str) -> None:
    """Refuse the token from now on; hosts using it stop taking tasks at their next heartbeat."""
    call("DELETE", _path(name, f"worker-tokens/{token_id}"))
    out.print(f"worker token {token_id} of {name} revoked", markup=False)


@worker_app.command("list")
def worker_list(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Hosts that joined NAME: ACTIVE, LOST (no heartbeat lately), REVOKED (token revoked) or STOPPED."""
    show(call("GET", _path(name, "workers")), as_json, lambda found: _print_workers(name, found))


def _print_workers(name: str, found: list[dict]) -> None:
    if not found:
        out.print(f"no host has joined {name}", markup=False)
        return
    table = Table("hostname", "address", "status", "state", "heartbeat", "concurrency", "running", box=None)
    for h in found:
        table.add_row(h["hostname"], h["address"], h["status"], h["state"], f"{_age(h['heartbeat_age_seconds'])} ago",
                      str(h["concurrency"]), str(h["running_tasks"]))
    out.print(table)


@worker_app.command("join")
def join(
    url: str = typer.Option(..., "--url", help="the control plane's URL, as this host reaches it"),
    environment: str = typer.Option(..., "--environment", "-e", help="the environment's name"),
    token: Optional[str] = typer.Option(None, "--token", help=f"the worker token (better: {TOKEN_VARIABLE} or --token-file)"),
    token_file: Optional[Path] = typer.Option(None, "--token-file", help="a file holding the worker token"),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", min=1, max=10_000,
                                              help="tasks this host runs at once (default: the environment's)"),
    home: Optional[Path] = typer.Option(None, "--home", help="where runtimes and files go (default HANGAR_HOME, ~/.hangar)"),
    drain_timeout: Optional[float] = typer.Option(None, "--drain-timeout", min=0,
                                                  help="seconds a stopping worker may take to finish its tasks "
                                                       "(default HANGAR_WORKER_DRAIN_SECONDS, 6 h)"),
    refresh_seconds: float = typer.Option(REFRESH_SECONDS, "--refresh-seconds", min=1,
                                          help="seconds between checks for new DAGs, plugins and configuration"),
) -> None:
    """Run Celery workers for ENVIRONMENT on this host, until its token is revoked or you stop it (Ctrl-C).

    Token: HANGAR_WORKER_TOKEN, --token-file or --token. No package index here? UV_OFFLINE=1 builds from uv's cache."""
    from hangar.agent.join import join as run_agent

    try:
        run_agent(url=url, environment=environment, token=token, token_file=token_file, concurrency=concurrency,
                  home=home, drain_timeout=drain_timeout, refresh_seconds=refresh_seconds)
    except HangarError as exc:  # cannot join, or the worker keeps crashing
        fail(exc.message)


def _age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _time(value: str | None) -> str:
    return str(value)[:19].replace("T", " ") if value else "never"
