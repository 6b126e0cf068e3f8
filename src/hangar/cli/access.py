"""`hangar access-key` and `hangar audit`: who may call the API, and what they did with it.

Clients of the HTTP API like every other command, for Admins only. A key's secret is shown
once, when it is created; afterwards the API knows only its hash.
"""
from __future__ import annotations

import json
from typing import Optional

import typer
from rich.console import Console

from hangar.cli.client import call
from hangar.cli.output import show

access_key_app = typer.Typer(no_args_is_help=True, help="Access keys for the API (Admin only).")
audit_app = typer.Typer()
out = Console()


@access_key_app.command("create")
def access_key_create(
    role: str = typer.Option(..., "--role", help="Admin, Op, User or Viewer"),
    description: Optional[str] = typer.Option(None, "--description"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Issue an access key; its secret is shown this once."""
    key = call("POST", "/api/v1/access-keys", json={"role": role, "description": description})
    if as_json:
        print(json.dumps(key))
        return
    out.print(f"access_key_id:     {key['access_key_id']}\nsecret_access_key: {key['secret_access_key']}\n"
              f"role:              {key['role']}\nnative API bearer: {key['api_key']}", markup=False)


@access_key_app.command("list")
def access_key_list(as_json: bool = typer.Option(False, "--json")) -> None:
    show(call("GET", "/api/v1/access-keys"), as_json, _print_access_keys)


def _print_access_keys(keys: list[dict]) -> None:
    for key in keys:
        state = "revoked" if key["revoked"] else "active"
        out.print(f"{key['access_key_id']}  {key['role']:<7} {state:<8} {key['created_at']}  {key['description'] or ''}",
                  markup=False)


@access_key_app.command("revoke")
def access_key_revoke(access_key_id: str) -> None:
    call("DELETE", f"/api/v1/access-keys/{access_key_id}")
    out.print(f"{access_key_id} revoked")


@audit_app.command("audit")
def audit(as_json: bool = typer.Option(False, "--json"), limit: int = typer.Option(200)) -> None:
    """Mutating calls: who, what, when, outcome (newest first)."""
    show(call("GET", "/api/v1/audit", params={"limit": limit}), as_json, _print_audit)


def _print_audit(entries: list[dict]) -> None:
    for e in entries:
        out.print(f"{e['at']}  {e['principal']:<20} {e['role']:<7} {e['action']:<28} {e['target'] or '-':<20} "
                  f"{e['outcome']} ({e['status_code']})", markup=False)
