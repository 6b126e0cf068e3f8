"""`hangar up`: one command from a DAGs folder to a running Airflow.

Starts the control plane in the background if it is not running, creates the environment (or
updates it when its DAGs folder or Airflow version changed), waits until it is AVAILABLE and
prints how to reach it. Run again, it changes nothing and prints a fresh login link.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from hangar.cli import serverctl
from hangar.cli.client import Client, ClientError, fail
from hangar.cli.waiting import IN_PROGRESS, check_outcome, wait_settled

up_app = typer.Typer()
out = Console()
err = Console(stderr=True)
REPO_EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "dags"


@up_app.command()
def up(
    dags_dir: Optional[Path] = typer.Argument(None, help="DAGs folder (default: the repo's examples/dags)"),
    name: Optional[str] = typer.Option(None, help="environment name (default: the folder's name)"),
    airflow_version: Optional[str] = typer.Option(None, "--airflow-version"),
    home: Optional[Path] = typer.Option(None, help="HANGAR_HOME"),
    timeout: float = typer.Option(900, help="seconds to wait for AVAILABLE"),
) -> None:
    """Start the control plane if needed, create or update an environment, wait until it is AVAILABLE."""
    settings = serverctl.settings_for(home)
    folder = (dags_dir or REPO_EXAMPLES).expanduser().resolve()
    if not folder.is_dir():
        fail(f"DAGs folder {folder} does not exist")
    env_name = name or re.sub(r"[^0-9a-zA-Z_-]", "-", folder.name)
    if not re.match(r"^[a-zA-Z]", env_name):
        env_name = f"env-{env_name}"
    try:
        with err.status("starting the control plane", spinner="dots"):
            serverctl.start_background(settings)
        client = Client.from_settings(settings)
        body = {"dags": str(folder)}
        if airflow_version:
            body["airflow_version"] = airflow_version
        try:
            current = client.request("GET", f"/api/v1/environments/{env_name}")
        except ClientError as exc:
            if "does not exist" not in str(exc):
                raise
            current = None
        if current is None:
            client.request("POST", "/api/v1/environments", json={"name": env_name, **body})
        elif current["status"] in IN_PROGRESS:
            pass  # already on its way; just wait for it
        elif current["spec"]["dags"] != body["dags"] or (airflow_version and airflow_version != current["airflow_version"]):
            client.request("PATCH", f"/api/v1/environments/{env_name}", json=body)
        env = wait_settled(client, env_name, timeout=timeout)
        assert env is not None
        check_outcome(env)
        if env["status"] != "AVAILABLE":
            fail(f"{env_name} is {env['status']}: {env.get('status_reason')}")
        token = client.request("POST", f"/api/v1/environments/{env_name}/token")
    except ClientError as exc:
        fail(str(exc))
    url = env["webserver_url"]
    out.print(f"[green]✓[/] {env_name} is AVAILABLE (Airflow {env['airflow_version']})")
    out.print(f"  Airflow UI:  {url}")
    out.print(f"  Console:     {client.url}/console (access key ID admin, the secret in {settings.api_key_file})")
    out.print(f"  Log in:      {url}/hangar/login?token={token['token']}", soft_wrap=True)
    out.print(f"  REST API:    curl -H \"Authorization: Bearer $(hangar env token {env_name})\" {url}/api/v{2 if env['airflow_version'].startswith('3') else 1}/dags")
    out.print("  The login link is valid for 2 hours; `hangar up` or `hangar env login` prints a fresh one.")
