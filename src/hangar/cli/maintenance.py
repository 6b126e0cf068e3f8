"""`hangar env maintenance show|request`: the weekly window and the runtime rebuild waiting for it.

Clients of the HTTP API like every other command. A request only records the rebuild;
Hangar starts it in the environment's next maintenance window (status MAINTENANCE).
"""
from __future__ import annotations

import typer
from rich.console import Console

from hangar.cli.client import call
from hangar.cli.output import show

maintenance_app = typer.Typer(no_args_is_help=True, help="The weekly maintenance window and the runtime rebuild "
                                                        "waiting for it.")
out = Console()


def _path(name: str) -> str:
    return f"/api/v1/environments/{name}/maintenance"


@maintenance_app.command("show")
def maintenance_show(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """The window, the pending rebuild with its reason, and how the last maintenance ended."""
    show(call("GET", _path(name)), as_json, _print)


@maintenance_app.command("request")
def maintenance_request(
    name: str,
    reason: str = typer.Option("a rebuild of the runtime was requested", "--reason", help="why, shown until it runs"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Rebuild the environment's runtime in its next maintenance window; nothing restarts now."""
    show(call("POST", _path(name), json={"reason": reason}), as_json, _print)


def _print(state: dict) -> None:
    default = " (default)" if state["default_window"] else ""
    now = "  (in the window now)" if state["in_window"] else ""
    lines = [
        f"environment    {state['environment']} ({state['status']})",
        f"window         {state['window_start']} UTC{default}, next {state['next_window']} to "
        f"{state['next_window_ends']}{now}",
        "pending        " + (f"yes, requested {state['requested_at']}: {state['reason']}" if state["pending"] else "no"),
        f"runtime epoch  {state['runtime_epoch']}",
    ]
    last = state.get("last_maintenance")
    if last:
        error = f": {last['error'].splitlines()[0]}" if last.get("error") else ""
        lines.append(f"last           {last['outcome']}, started {last['started_at']}{error}")
    for line in lines:
        out.print(line, markup=False, soft_wrap=True)
