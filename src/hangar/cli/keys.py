"""`hangar key`: KMS keys that wrap environment secrets.

Clients of the HTTP API like every other command. Key material never reaches the
CLI: the API returns ids, aliases, ARNs, version counts and dates only.
"""
from __future__ import annotations

import json
from typing import Optional
from urllib.parse import quote

import typer
from rich.console import Console

from hangar.cli.client import call
from hangar.cli.output import show

kms_app = typer.Typer(no_args_is_help=True, help="KMS keys that encrypt environment secrets (Admin only).")
out = Console()


def _print_key(key: dict) -> None:
    out.print(f"{key['key_id']}  {key['alias'] or '-':<28} {key['key_manager']:<8} v{key['current_version']} "
              f"({key['versions']} versions)  rotated {key['rotated_at'] or 'never'}  {key['description'] or ''}",
              markup=False, soft_wrap=True)


@kms_app.command("create")
def key_create(
    alias: Optional[str] = typer.Option(None, "--alias", help="alias/NAME"),
    description: Optional[str] = typer.Option(None, "--description"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a customer-managed key; name it in an environment's kms_key (id, alias or ARN)."""
    key = call("POST", "/api/v1/keys", json={"alias": alias, "description": description})
    if as_json:
        print(json.dumps(key))
        return
    out.print(f"key_id: {key['key_id']}\narn:    {key['arn']}\nalias:  {key['alias'] or '-'}", markup=False,
              soft_wrap=True)


@kms_app.command("list")
def key_list(as_json: bool = typer.Option(False, "--json")) -> None:
    show(call("GET", "/api/v1/keys"), as_json, lambda keys: [_print_key(key) for key in keys])


@kms_app.command("rotate")
def key_rotate(
    key: str = typer.Argument(..., metavar="KEY_ID_OR_ALIAS", help="key id, alias/NAME, or an ARN of either"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Add a key version and re-wrap every data key under it; secrets stay as they are, nothing restarts."""
    rotated = call("POST", f"/api/v1/keys/{quote(key, safe='/:')}/rotate")
    if as_json:
        print(json.dumps(rotated))
        return
    out.print(f"{rotated['key_id']} rotated to version {rotated['current_version']}; "
              f"{rotated['rewrapped']} data keys re-wrapped", markup=False, soft_wrap=True)
