"""`hangar git-credential`: HTTPS tokens and SSH deploy keys for DAGs from git. Secrets are read
from files (or stdin with -), never from the command line, where other users could see them."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from hangar.cli.client import call, fail
from hangar.cli.output import show

git_credential_app = typer.Typer(no_args_is_help=True, help="Credentials for DAGs from private git repositories.")
git_env_app = typer.Typer()  # `hangar env sync`, `hangar env git-webhook`


def _read(path: str, what: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).expanduser().read_text()
    except OSError as exc:
        fail(f"cannot read the {what} file {path}: {exc.strerror}")
        raise  # unreachable: fail exits


@git_credential_app.command("create")
def create(
    name: str,
    token_file: Optional[str] = typer.Option(None, "--token-file", help="a file holding an HTTPS token (- for stdin)"),
    ssh_key_file: Optional[str] = typer.Option(None, "--ssh-key-file", help="an SSH deploy key (private)"),
    known_hosts_file: Optional[str] = typer.Option(None, "--known-hosts-file",
                                                   help="known_hosts lines pinning the SSH server's host key"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Store a credential, encrypted; it is never shown again."""
    if (token_file is None) == (ssh_key_file is None):
        fail("give either --token-file, or --ssh-key-file with --known-hosts-file")
    body: dict = {"name": name}
    if token_file is not None:
        body["token"] = _read(token_file, "token").strip()
    else:
        if known_hosts_file is None:
            fail("--ssh-key-file needs --known-hosts-file: the server's host key is pinned, never trusted on first use")
        body["ssh_key"] = _read(ssh_key_file, "SSH key")
        body["known_hosts"] = _read(known_hosts_file, "known_hosts")
    show(call("POST", "/api/v1/git-credentials", json=body), as_json,
         lambda c: print(f"created git credential {c['name']} ({c['kind']})"))


@git_credential_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """Credentials by name and kind (no secret is ever shown)."""
    def render(rows: list[dict]) -> None:
        for row in rows:
            hosts = f"  pinned hosts: {', '.join(row['hosts'])}" if row["hosts"] else ""
            print(f"{row['name']:<24} {row['kind']:<6} created {row['created_at'][:19]}{hosts}")
    show(call("GET", "/api/v1/git-credentials"), as_json, render)


@git_credential_app.command("delete")
def delete(name: str) -> None:
    call("DELETE", f"/api/v1/git-credentials/{name}")
    print(f"deleted git credential {name}")


@git_env_app.command("sync")
def env_sync(name: str, accept_rewritten_history: bool = typer.Option(
        False, "--accept-rewritten-history", help="take the ref's new commit even if it was force-pushed")) -> None:
    """Sync an environment's DAGs from git now (hangar env get shows the commit served)."""
    call("POST", f"/api/v1/environments/{name}/sync",
         params={"accept_rewritten_history": "true"} if accept_rewritten_history else None)
    print(f"sync of {name} requested")


@git_env_app.command("git-webhook")
def env_git_webhook(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """A new push webhook secret (the old one stops working) and the webhook's address, for GitHub's or
    GitLab's webhook settings. The secret is shown this once."""
    def render(hook: dict) -> None:
        print(f"URL:    {hook['url']}\nSecret: {hook['secret']}\nGitHub: {hook['github']}\nGitLab: {hook['gitlab']}")
    show(call("POST", f"/api/v1/environments/{name}/git-webhook-secret"), as_json, render)
