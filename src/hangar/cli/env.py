"""`hangar env`: create, inspect, update and delete environments.

Clients of the HTTP API like every other command. A create or update returns once the control
plane accepted it; `--wait` follows it until the environment settles (hangar.cli.waiting).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from hangar.cli.client import Client, ClientError, call, fail
from hangar.cli.output import print_env, print_plan, show
from hangar.cli.spec_flags import extras_body, git_body, pairs, scale_body, spec_body
from hangar.cli.waiting import check_outcome, send_and_report, wait_settled

env_app = typer.Typer(no_args_is_help=True, help="Create, inspect, update and delete environments.")
out = Console()


@env_app.command("create")
def env_create(
    name: str,
    dags: Optional[Path] = typer.Option(None, help="DAGs folder (or --dags-git)"),
    dags_git: Optional[str] = typer.Option(None, "--dags-git", help="DAGs from this git repository URL"),
    git_ref: Optional[str] = typer.Option(None, "--git-ref", help="branch, tag or commit (default main)"),
    git_subdir: Optional[str] = typer.Option(None, "--git-subdir", help="the repository's folder holding the DAGs"),
    git_credential: Optional[str] = typer.Option(None, "--git-credential", help="a stored credential's name"),
    git_interval: Optional[int] = typer.Option(None, "--git-interval", help="seconds between syncs (default 60)"),
    airflow_version: Optional[str] = typer.Option(None, "--airflow-version"),
    requirements: Optional[Path] = typer.Option(None, help="requirements.txt file"),
    config: list[str] = typer.Option([], "--config", help="section.key=value (repeatable)"),
    env: list[str] = typer.Option([], "--env", help="KEY=VALUE (repeatable)"),
    env_class: Optional[str] = typer.Option(None, "--class", help="small, medium or large"),
    metadata_db_url: Optional[str] = typer.Option(None, "--metadata-db-url", help="external PostgreSQL URL"),
    kms_key: Optional[str] = typer.Option(None, "--kms-key", help="Hangar key id, alias or ARN for the secrets"),
    tag: list[str] = typer.Option([], "--tag", help="KEY=VALUE (repeatable)"),
    plugins: Optional[Path] = typer.Option(None, help="plugins folder or plugins.zip"),
    startup_script: Optional[Path] = typer.Option(None, "--startup-script", help="shell script run before each component"),
    maintenance_window: Optional[str] = typer.Option(None, "--maintenance-window", help="weekly start, e.g. TUE:03:30"),
    snapshot_schedule: Optional[str] = typer.Option(None, "--snapshot-schedule", help="cron expression"),
    snapshot_retention: Optional[int] = typer.Option(None, "--snapshot-retention", help="scheduled snapshots kept"),
    executor: Optional[str] = typer.Option(None, "--executor", help="local or celery"),
    min_workers: Optional[int] = typer.Option(None, "--min-workers", help="Celery workers kept running"),
    max_workers: Optional[int] = typer.Option(None, "--max-workers", help="Celery workers the autoscaler may add"),
    schedulers: Optional[int] = typer.Option(None, "--schedulers", help="schedulers run at once (1-5)"),
    worker_concurrency: Optional[int] = typer.Option(None, "--worker-concurrency", help="tasks one Celery worker runs at once"),
    wait: bool = typer.Option(False, "--wait"),
    timeout: float = typer.Option(900, help="seconds --wait waits"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create an environment."""
    if (dags is None) == (dags_git is None):
        fail("give --dags FOLDER or --dags-git URL")
    body = {"name": name, **spec_body(dags, airflow_version, requirements, config, env, env_class)}
    body.update(git_body(dags_git, git_ref, git_subdir, git_credential, git_interval))
    body.update(extras_body(plugins, startup_script, maintenance_window, snapshot_schedule, snapshot_retention))
    body.update(scale_body(executor, min_workers, max_workers, schedulers, worker_concurrency))
    if metadata_db_url:
        body["metadata_db_url"] = metadata_db_url
    if kms_key:
        body["kms_key"] = kms_key
    if tag:
        body["tags"] = pairs(tag, "--tag")
    send_and_report("POST", "/api/v1/environments", body, name=name, wait=wait, timeout=timeout, as_json=as_json)


@env_app.command("update")
def env_update(
    name: str,
    dags: Optional[Path] = typer.Option(None, help="DAGs folder"),
    dags_git: Optional[str] = typer.Option(None, "--dags-git", help="DAGs from this git repository URL"),
    git_ref: Optional[str] = typer.Option(None, "--git-ref", help="branch, tag or commit (default main)"),
    git_subdir: Optional[str] = typer.Option(None, "--git-subdir", help="the repository's folder holding the DAGs"),
    git_credential: Optional[str] = typer.Option(None, "--git-credential", help="a stored credential's name"),
    git_interval: Optional[int] = typer.Option(None, "--git-interval", help="seconds between syncs (default 60)"),
    airflow_version: Optional[str] = typer.Option(None, "--airflow-version"),
    requirements: Optional[Path] = typer.Option(None, help="requirements.txt file"),
    no_requirements: bool = typer.Option(False, "--no-requirements", help="remove the requirements"),
    plugins: Optional[Path] = typer.Option(None, help="plugins folder or plugins.zip"),
    no_plugins: bool = typer.Option(False, "--no-plugins", help="remove the plugins"),
    startup_script: Optional[Path] = typer.Option(None, "--startup-script", help="shell script run before each component"),
    no_startup_script: bool = typer.Option(False, "--no-startup-script", help="remove the startup script"),
    config: list[str] = typer.Option([], "--config", help="section.key=value (repeatable); replaces the set"),
    env: list[str] = typer.Option([], "--env", help="KEY=VALUE (repeatable); replaces the set"),
    env_class: Optional[str] = typer.Option(None, "--class"),
    tag: list[str] = typer.Option([], "--tag", help="KEY=VALUE (repeatable); replaces the set"),
    maintenance_window: Optional[str] = typer.Option(None, "--maintenance-window", help="weekly start, e.g. TUE:03:30"),
    snapshot_schedule: Optional[str] = typer.Option(None, "--snapshot-schedule", help="cron expression"),
    snapshot_retention: Optional[int] = typer.Option(None, "--snapshot-retention", help="scheduled snapshots kept"),
    allow_downgrade: bool = typer.Option(False, "--allow-downgrade", help="allow an older Airflow version"),
    executor: Optional[str] = typer.Option(None, "--executor", help="local or celery"),
    min_workers: Optional[int] = typer.Option(None, "--min-workers", help="Celery workers kept running"),
    max_workers: Optional[int] = typer.Option(None, "--max-workers", help="Celery workers the autoscaler may add"),
    schedulers: Optional[int] = typer.Option(None, "--schedulers", help="schedulers run at once (1-5)"),
    worker_concurrency: Optional[int] = typer.Option(None, "--worker-concurrency", help="tasks one Celery worker runs at once"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the change plan; change nothing"),
    wait: bool = typer.Option(False, "--wait"),
    timeout: float = typer.Option(900),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Update an environment: stores a new revision and applies it by the least disruptive path."""
    body = spec_body(dags, airflow_version, requirements, config, env, env_class)
    body.update(git_body(dags_git, git_ref, git_subdir, git_credential, git_interval))
    body.update(extras_body(plugins, startup_script, maintenance_window, snapshot_schedule, snapshot_retention))
    body.update(scale_body(executor, min_workers, max_workers, schedulers, worker_concurrency))
    for flag, field in ((no_requirements, "requirements"), (no_plugins, "plugins"), (no_startup_script, "startup_script")):
        if flag:
            if field in body:
                fail(f"give --{field.replace('_', '-')} or --no-{field.replace('_', '-')}, not both")
            body[field] = None
    if tag:
        body["tags"] = pairs(tag, "--tag")
    if allow_downgrade:
        body["allow_downgrade"] = True
    if dry_run:
        print_plan(call("POST", f"/api/v1/environments/{name}/plan", json=body), as_json)
        return
    send_and_report("PATCH", f"/api/v1/environments/{name}", body, name=name, wait=wait, timeout=timeout,
                     as_json=as_json)

@env_app.command("get")
def env_get(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    print_env(call("GET", f"/api/v1/environments/{name}"), as_json)


@env_app.command("list")
def env_list(as_json: bool = typer.Option(False, "--json")) -> None:
    envs = call("GET", "/api/v1/environments")
    if as_json:
        print(json.dumps(envs, indent=2, default=str))
        return
    for env in envs:
        out.print(f"{env['name']:<30} {env['status']:<14} {env['airflow_version']:<8} {env.get('webserver_url') or ''}")


@env_app.command("delete")
def env_delete(name: str, wait: bool = typer.Option(False, "--wait"), timeout: float = typer.Option(300)) -> None:
    try:
        client = Client.from_environment()
        client.request("DELETE", f"/api/v1/environments/{name}")
        if wait:
            wait_settled(client, name, timeout=timeout, deleting=True)
    except ClientError as exc:
        fail(str(exc))
    out.print(f"{name} deleted" if wait else f"{name} is being deleted")


@env_app.command("wait")
def env_wait(name: str, timeout: float = typer.Option(900), as_json: bool = typer.Option(False, "--json")) -> None:
    """Wait until the environment settles; exit 1 if it ends failed."""
    try:
        result = wait_settled(Client.from_environment(), name, timeout=timeout, quiet=as_json)
    except ClientError as exc:
        fail(str(exc))
    print_env(result, as_json)
    check_outcome(result)


@env_app.command("token")
def env_token(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Print a bearer token (Admin, valid 2 hours) for the environment's Airflow REST API."""
    token = call("POST", f"/api/v1/environments/{name}/token")
    print(json.dumps(token) if as_json else token["token"])


@env_app.command("login")
def env_login(name: str) -> None:
    """Print a link that logs a browser into the environment's Airflow UI."""
    token = call("POST", f"/api/v1/environments/{name}/token")
    print(f"{token['webserver_url']}/hangar/login?token={token['token']}")


@env_app.command("events")
def env_events(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Status changes with their reasons."""
    show(call("GET", f"/api/v1/environments/{name}/events"), as_json, _print_events)


def _print_events(events: list[dict]) -> None:
    for event in events:
        out.print(f"{event['at']}  {event['previous'] or '-':>14} -> {event['status']:<14} {event['reason']}", markup=False)


@env_app.command("rotate-fernet")
def env_rotate_fernet(
    name: str,
    wait: bool = typer.Option(False, "--wait"),
    timeout: float = typer.Option(900, help="seconds --wait waits"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Replace the environment's fernet key; connections and variables are re-encrypted with the new one."""
    send_and_report("POST", f"/api/v1/environments/{name}/rotate-fernet", {}, name=name, wait=wait, timeout=timeout,
                    as_json=as_json)
