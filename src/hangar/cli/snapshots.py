"""`hangar env snapshot create|list|restore|delete`: snapshots of an environment.

Clients of the HTTP API like every other command. A refused restore prints the
error's code with its message (SNAPSHOT_CORRUPTED names what does not match) and
exits 1; `--wait` exits 1 when the snapshot, restore or clone ends failed.
"""
from __future__ import annotations

import json
import time
from contextlib import nullcontext
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from hangar.cli.client import Client, ClientError, call, fail
from hangar.cli.output import show
from hangar.cli.waiting import send_and_report

snapshot_app = typer.Typer(no_args_is_help=True, help="Snapshots of an environment: its spec, metadata database, "
                                                     "DAGs and plugins in one verified archive.")
out = Console()
err = Console(stderr=True)


def _path(name: str, snapshot_id: str | None = None) -> str:
    path = f"/api/v1/environments/{name}/snapshots"
    return f"{path}/{snapshot_id}" if snapshot_id else path


@snapshot_app.command("create")
def snapshot_create(
    name: str,
    wait: bool = typer.Option(False, "--wait", help="wait until the snapshot is taken"),
    timeout: float = typer.Option(1800, help="seconds --wait waits"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Take a snapshot; the environment keeps running (status CREATING_SNAPSHOT meanwhile)."""
    requested = call("POST", _path(name))
    snapshot_id = requested["snapshot_id"]
    if not wait:
        print(json.dumps(requested, default=str) if as_json else snapshot_id)
        return
    try:
        client = Client.from_environment()
        deadline = time.monotonic() + timeout
        with err.status(f"taking snapshot {snapshot_id}", spinner="dots") if not as_json else nullcontext():
            while (env := client.request("GET", f"/api/v1/environments/{name}"))["status"] == "CREATING_SNAPSHOT":
                if time.monotonic() > deadline:
                    fail(f"timed out after {timeout:.0f} s waiting for snapshot {snapshot_id}")
                time.sleep(0.5)
        taken = next((s for s in client.request("GET", _path(name)) if s["id"] == snapshot_id), None)
    except ClientError as exc:
        fail(str(exc))
    if taken is None:
        fail(f"snapshot {snapshot_id} of {name} was not taken: {env.get('status_reason') or env['status']}")
    if as_json:
        print(json.dumps(taken))
        return
    _print([taken])


@snapshot_app.command("list")
def snapshot_list(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Snapshots of the environment, newest first."""
    show(call("GET", _path(name)), as_json, _print)


@snapshot_app.command("restore")
def snapshot_restore(
    name: str,
    snapshot_id: str,
    into: Optional[str] = typer.Option(None, "--into", help="clone into a new environment of this name"),
    wait: bool = typer.Option(False, "--wait"),
    timeout: float = typer.Option(1800, help="seconds --wait waits"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Restore a snapshot into the environment itself (its components restart), or clone it --into a new one."""
    send_and_report("POST", f"{_path(name, snapshot_id)}/restore", {"into": into}, name=into or name, wait=wait,
                    timeout=timeout, as_json=as_json, request_timeout=120, with_code=True)


@snapshot_app.command("delete")
def snapshot_delete(name: str, snapshot_id: str) -> None:
    """Delete a snapshot and its archive."""
    call("DELETE", _path(name, snapshot_id))
    out.print(f"snapshot {snapshot_id} deleted", markup=False)


def _print(taken: list[dict]) -> None:
    table = Table("id", "kind", "revision", "airflow", "created", "size", box=None)
    for s in taken:
        table.add_row(s["id"], s["kind"], str(s["revision"]), s["airflow_version"], str(s["created_at"])[:19],
                      _size(s["size"]))
    out.print(table)


def _size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"
