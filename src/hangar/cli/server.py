"""`hangar server`: run the control plane in the foreground, or start, stop and check it in the background.

The only commands that are not clients of the HTTP API: they run it (hangar.cli.serverctl).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from hangar.cli import serverctl
from hangar.cli.client import Client, ClientError, fail
from hangar.errors import HangarError

server_app = typer.Typer(help="Run the control plane.")
out = Console()


@server_app.callback(invoke_without_command=True)
def server(
    ctx: typer.Context,
    home: Optional[Path] = typer.Option(None, help="HANGAR_HOME (default ~/.hangar)"),
    host: Optional[str] = typer.Option(None, help="address to listen on (default 127.0.0.1)"),
    port: Optional[int] = typer.Option(None, help="port to listen on (default 8765)"),
    celery_broker_url: Optional[str] = typer.Option(
        None, "--celery-broker-url", help="redis://... or amqp://... for Celery environments (or HANGAR_CELERY_BROKER_URL)"),
) -> None:
    """Run the control plane in the foreground (or use start|stop|status)."""
    ctx.obj = serverctl.settings_for(home, host, port)
    if celery_broker_url is not None:
        ctx.obj = ctx.obj.model_copy(update={"celery_broker_url": celery_broker_url})
    if ctx.invoked_subcommand is None:
        try:
            serverctl.serve(ctx.obj)
        except HangarError as exc:
            fail(exc.message)


@server_app.command("start")
def server_start(ctx: typer.Context) -> None:
    """Start the control plane in the background."""
    try:
        url = serverctl.start_background(ctx.obj)
    except ClientError as exc:
        fail(str(exc))
    out.print(f"Hangar control plane running at {url}")


@server_app.command("stop")
def server_stop(ctx: typer.Context) -> None:
    """Stop the background control plane; environments keep running."""
    stopped = serverctl.stop_background(ctx.obj)
    out.print("stopped" if stopped else "not running")


@server_app.command("status")
def server_status(ctx: typer.Context) -> None:
    pid = serverctl.running_pid(ctx.obj)
    if pid is None:
        out.print("not running")
        raise typer.Exit(3)
    out.print(f"running (pid {pid}) at {Client.from_settings(ctx.obj).url}")
