"""`hangar env history` and `hangar env rollback`: the revisions of an environment, and
applying an earlier one through the same safe path as any update."""
from __future__ import annotations

import typer
from rich.console import Console

from hangar.cli.client import call
from hangar.cli.output import show
from hangar.cli.waiting import send_and_report

history_app = typer.Typer()
out = Console()


@history_app.command("history")
def env_history(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """List the revisions with their status, time and what each changed."""
    show(call("GET", f"/api/v1/environments/{name}/history"), as_json, _print_history)


def _print_history(revisions: list[dict]) -> None:
    for rev in revisions:
        marks = " ".join(m for m, on in (("running", rev["running"]), ("last-good", rev["last_good"])) if on)
        out.print(f"revision {rev['revision']:<4} {rev['status']:<12} {rev['created_at']}  {marks}", markup=False)
        for line in rev["changes"]:
            out.print(f"    {line}", markup=False, soft_wrap=True)
        if rev.get("error"):
            out.print(f"    error: {rev['error'].splitlines()[0]}", markup=False, soft_wrap=True)


@history_app.command("rollback")
def env_rollback(
    name: str,
    to: int = typer.Option(..., "--to", help="the revision to apply again"),
    allow_downgrade: bool = typer.Option(False, "--allow-downgrade", help="allow an older Airflow version"),
    wait: bool = typer.Option(False, "--wait"),
    timeout: float = typer.Option(900),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Apply an earlier revision again (as a new revision), through the same safe path as an update."""
    send_and_report("POST", f"/api/v1/environments/{name}/rollback", {"to": to, "allow_downgrade": allow_downgrade},
                     name=name, wait=wait, timeout=timeout, as_json=as_json)
