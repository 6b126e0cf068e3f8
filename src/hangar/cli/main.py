"""`hangar`: the CLI. Every command but `server` is a client of the HTTP API.

Failures print one line on stderr and exit 1; `--wait` exits 1 when the
environment ends in a *_FAILED status or its update failed and rolled back.

Importing this module stays cheap (Typer, rich, httpx): what only `server`, `up` or `worker join`
need (the API app, the store, the runtime builder, even pydantic's Settings) is imported when
those commands run. tests/unit/cli/test_startup_imports.py holds the line.
"""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console

from hangar.cli import serverctl
from hangar.cli.bucket import bucket_app
from hangar.cli.client import Client, ClientError, call, fail
from hangar.errors import HangarError

if TYPE_CHECKING:
    from hangar.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Hangar: managed Apache Airflow on your own machines.")
server_app = typer.Typer(help="Run the control plane.")
env_app = typer.Typer(no_args_is_help=True, help="Create, inspect, update and delete environments.")
key_app = typer.Typer(no_args_is_help=True, help="Access keys for the API (Admin only).")
app.add_typer(server_app, name="server")
app.add_typer(env_app, name="env")
app.add_typer(key_app, name="access-key")
app.add_typer(bucket_app, name="bucket")

out = Console()
err = Console(stderr=True)
SETTLED_FAIL = {"CREATE_FAILED", "UPDATE_FAILED"}
IN_PROGRESS = {"CREATING", "UPDATING", "DELETING", "ROLLING_BACK", "PENDING", "CREATING_SNAPSHOT", "MAINTENANCE"}
REPO_EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "dags"


def _settings(home: Optional[Path] = None, host: Optional[str] = None, port: Optional[int] = None) -> Settings:
    from hangar.settings import Settings

    overrides = {k: v for k, v in {"home": home, "host": host, "port": port}.items() if v is not None}
    return Settings(**overrides)


def _client() -> Client:
    return Client.from_environment()


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    result = {}
    for value in values:
        if "=" not in value:
            fail(f"{flag} {value!r} must look like KEY=VALUE")
        key, _, val = value.partition("=")
        result[key.strip()] = val
    return result


def _print_env(env: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(env, indent=2, default=str))
        return
    out.print(f"[bold]{env['name']}[/]  {env['status']}  Airflow {env['airflow_version']}  revision {env['revision']}")
    if env.get("status_reason"):
        out.print(f"  reason: {env['status_reason']}", markup=False)
    if env.get("webserver_url"):
        out.print(f"  url: {env['webserver_url']}")
    error = (env.get("last_update") or {}).get("error")
    if error:
        out.print(f"  last update failed: {error['code']}: {error['message']}", markup=False)
    workers = env.get("workers")
    if workers:
        out.print(f"  workers: {workers['current']} running, {workers['desired']} wanted (min {workers['min']}, max "
                  f"{workers['max']}, {workers['concurrency']} tasks each); tasks queued {workers['queued_tasks']}, "
                  f"running {workers['running_tasks']}")
    for component in env.get("components", []):
        out.print(f"  {component['name']:<14} {component['state']:<9} pid {component['pid']}  restarts {component['restarts']}")


def _wait(client: Client, name: str, *, timeout: float, deleting: bool = False, quiet: bool = False) -> dict | None:
    deadline = time.monotonic() + timeout
    env: dict | None = None
    with err.status("waiting", spinner="dots") if not quiet else _Null() as status:
        while time.monotonic() < deadline:
            try:
                env = client.request("GET", f"/api/v1/environments/{name}")
            except ClientError as exc:
                if deleting and "does not exist" in str(exc):
                    return None
                raise
            assert isinstance(env, dict)
            if status is not None:
                status.update(f"{env['status']}: {(env.get('status_reason') or '')[:100]}")
            if env["status"] not in IN_PROGRESS:
                return env
            time.sleep(0.5)
    fail(f"timed out after {timeout:.0f} s waiting for {name}; it is {env['status'] if env else 'unknown'}")
    return None


class _Null:
    def __enter__(self):
        return None

    def __exit__(self, *args):
        return False


def _check_outcome(env: dict) -> None:
    last = env.get("last_update") or {}
    if env["status"] in SETTLED_FAIL or last.get("status") == "FAILED":
        error = last.get("error") or {}
        fail(f"{env['name']} is {env['status']}: {error.get('code', '')}: {error.get('message', env.get('status_reason'))}")


def _send_and_report(method: str, path: str, body: dict, *, name: str, wait: bool, timeout: float, as_json: bool) -> None:
    """Send a create or update; with --wait, follow it and exit 1 if it ends failed."""
    try:
        client = _client()
        result = client.request(method, path, json=body)
        if wait:
            result = _wait(client, name, timeout=timeout, quiet=as_json)
    except ClientError as exc:
        fail(str(exc))
    _print_env(result, as_json)
    if wait:
        _check_outcome(result)


def _spec_body(dags, airflow_version, requirements, config, env, env_class) -> dict:
    body: dict = {}
    if dags is not None:
        body["dags"] = str(Path(dags).expanduser().resolve())
    if airflow_version is not None:
        body["airflow_version"] = airflow_version
    if requirements is not None:
        path = Path(requirements)
        if not path.is_file():
            fail(f"requirements file {requirements} does not exist")
        body["requirements"] = path.read_text()
    if config:
        body["airflow_configuration_options"] = _pairs(config, "--config")
    if env:
        body["environment_variables"] = _pairs(env, "--env")
    if env_class is not None:
        body["environment_class"] = env_class
    return body


# ---------------------------------------------------------------- server

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
    ctx.obj = _settings(home, host, port)
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


# ---------------------------------------------------------------- up

@app.command()
def up(
    dags_dir: Optional[Path] = typer.Argument(None, help="DAGs folder (default: the repo's examples/dags)"),
    name: Optional[str] = typer.Option(None, help="environment name (default: the folder's name)"),
    airflow_version: Optional[str] = typer.Option(None, "--airflow-version"),
    home: Optional[Path] = typer.Option(None, help="HANGAR_HOME"),
    timeout: float = typer.Option(900, help="seconds to wait for AVAILABLE"),
) -> None:
    """Start the control plane if needed, create or update an environment, wait until it is AVAILABLE."""
    settings = _settings(home)
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
        env = _wait(client, env_name, timeout=timeout)
        assert env is not None
        _check_outcome(env)
        if env["status"] != "AVAILABLE":
            fail(f"{env_name} is {env['status']}: {env.get('status_reason')}")
        token = client.request("POST", f"/api/v1/environments/{env_name}/token")
    except ClientError as exc:
        fail(str(exc))
    url = env["webserver_url"]
    out.print(f"[green]✓[/] {env_name} is AVAILABLE (Airflow {env['airflow_version']})")
    out.print(f"  Airflow UI:  {url}")
    out.print(f"  Log in:      {url}/hangar/login?token={token['token']}", soft_wrap=True)
    out.print(f"  REST API:    curl -H \"Authorization: Bearer $(hangar env token {env_name})\" {url}/api/v{2 if env['airflow_version'].startswith('3') else 1}/dags")
    out.print("  The login link is valid for 2 hours; `hangar up` or `hangar env login` prints a fresh one.")


# ---------------------------------------------------------------- env

@env_app.command("create")
def env_create(
    name: str,
    dags: Path = typer.Option(..., help="DAGs folder"),
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
    body = {"name": name, **_spec_body(dags, airflow_version, requirements, config, env, env_class)}
    body.update(_extras_body(plugins, startup_script, maintenance_window, snapshot_schedule, snapshot_retention))
    body.update(_scale_body(executor, min_workers, max_workers, schedulers, worker_concurrency))
    if metadata_db_url:
        body["metadata_db_url"] = metadata_db_url
    if kms_key:
        body["kms_key"] = kms_key
    if tag:
        body["tags"] = _pairs(tag, "--tag")
    _send_and_report("POST", "/api/v1/environments", body, name=name, wait=wait, timeout=timeout, as_json=as_json)


@env_app.command("update")
def env_update(
    name: str,
    dags: Optional[Path] = typer.Option(None, help="DAGs folder"),
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
    body = _spec_body(dags, airflow_version, requirements, config, env, env_class)
    body.update(_extras_body(plugins, startup_script, maintenance_window, snapshot_schedule, snapshot_retention))
    body.update(_scale_body(executor, min_workers, max_workers, schedulers, worker_concurrency))
    for flag, field in ((no_requirements, "requirements"), (no_plugins, "plugins"), (no_startup_script, "startup_script")):
        if flag:
            if field in body:
                fail(f"give --{field.replace('_', '-')} or --no-{field.replace('_', '-')}, not both")
            body[field] = None
    if tag:
        body["tags"] = _pairs(tag, "--tag")
    if allow_downgrade:
        body["allow_downgrade"] = True
    if dry_run:
        _print_plan(call("POST", f"/api/v1/environments/{name}/plan", json=body), as_json)
        return
    _send_and_report("PATCH", f"/api/v1/environments/{name}", body, name=name, wait=wait, timeout=timeout,
                     as_json=as_json)


def _scale_body(executor, min_workers, max_workers, schedulers, worker_concurrency) -> dict:
    given = {"executor": executor, "min_workers": min_workers, "max_workers": max_workers, "schedulers": schedulers,
             "worker_concurrency": worker_concurrency}
    return {k: v for k, v in given.items() if v is not None}


def _extras_body(plugins, startup_script, maintenance_window, snapshot_schedule, snapshot_retention) -> dict:
    body: dict = {}
    if plugins is not None:
        if not plugins.exists():
            fail(f"plugins {plugins} does not exist")
        body["plugins"] = str(plugins.expanduser().resolve())
    if startup_script is not None:
        if not startup_script.is_file():
            fail(f"startup script {startup_script} does not exist")
        body["startup_script"] = startup_script.read_text()
    if maintenance_window is not None:
        body["weekly_maintenance_window_start"] = maintenance_window
    if snapshot_schedule is not None:
        body["snapshot_schedule"] = snapshot_schedule
    if snapshot_retention is not None:
        body["snapshot_retention"] = snapshot_retention
    return body


def _print_plan(plan: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(plan, indent=2))
        return
    out.print(f"Change plan: revision {plan['from_revision']} -> {plan['to_revision']}: [bold]{plan['kind']}[/]")
    if plan.get("airflow"):
        out.print(f"  Airflow: {plan['airflow']}")
    out.print(f"  changed: {', '.join(plan['changed']) or 'nothing'}", markup=False)
    out.print(f"  restarts: {', '.join(plan['restart']) or 'nothing'}", markup=False)
    for step in plan["steps"]:
        out.print(f"  - {step}", markup=False)
    if plan.get("packages") is not None:
        out.print(f"  packages ({len(plan['packages'])} changed):")
        for change in plan["packages"]:
            if change["old"] and change["new"]:
                out.print(f"    ~ {change['name']} {change['old']} -> {change['new']}", markup=False)
            elif change["new"]:
                out.print(f"    + {change['name']} {change['new']}", markup=False)
            else:
                out.print(f"    - {change['name']} {change['old']}", markup=False)
    out.print("Nothing was changed (dry run).")


@env_app.command("get")
def env_get(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    _print_env(call("GET", f"/api/v1/environments/{name}"), as_json)


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
        client = _client()
        client.request("DELETE", f"/api/v1/environments/{name}")
        if wait:
            _wait(client, name, timeout=timeout, deleting=True)
    except ClientError as exc:
        fail(str(exc))
    out.print(f"{name} deleted" if wait else f"{name} is being deleted")


@env_app.command("wait")
def env_wait(name: str, timeout: float = typer.Option(900), as_json: bool = typer.Option(False, "--json")) -> None:
    """Wait until the environment settles; exit 1 if it ends failed."""
    try:
        result = _wait(_client(), name, timeout=timeout, quiet=as_json)
    except ClientError as exc:
        fail(str(exc))
    _print_env(result, as_json)
    _check_outcome(result)


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
    events = call("GET", f"/api/v1/environments/{name}/events")
    if as_json:
        print(json.dumps(events, indent=2))
        return
    for event in events:
        out.print(f"{event['at']}  {event['previous'] or '-':>14} -> {event['status']:<14} {event['reason']}", markup=False)


# ---------------------------------------------------------------- access keys and audit

@key_app.command("create")
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


@key_app.command("list")
def access_key_list(as_json: bool = typer.Option(False, "--json")) -> None:
    keys = call("GET", "/api/v1/access-keys")
    if as_json:
        print(json.dumps(keys, indent=2))
        return
    for key in keys:
        state = "revoked" if key["revoked"] else "active"
        out.print(f"{key['access_key_id']}  {key['role']:<7} {state:<8} {key['created_at']}  {key['description'] or ''}",
                  markup=False)


@key_app.command("revoke")
def access_key_revoke(access_key_id: str) -> None:
    call("DELETE", f"/api/v1/access-keys/{access_key_id}")
    out.print(f"{access_key_id} revoked")


@app.command("audit")
def audit(as_json: bool = typer.Option(False, "--json"), limit: int = typer.Option(200)) -> None:
    """Mutating calls: who, what, when, outcome (newest first)."""
    entries = call("GET", "/api/v1/audit", params={"limit": limit})
    if as_json:
        print(json.dumps(entries, indent=2))
        return
    for e in entries:
        out.print(f"{e['at']}  {e['principal']:<20} {e['role']:<7} {e['action']:<28} {e['target'] or '-':<20} "
                  f"{e['outcome']} ({e['status_code']})", markup=False)


def main() -> None:
    app()


# `hangar key ...` and `hangar env rotate-fernet` live in their own module
from hangar.cli.keys import install as _install_key_commands  # noqa: E402

_install_key_commands(app=app, env_app=env_app)

from hangar.cli.history import install as _install_history_commands  # noqa: E402

_install_history_commands(env_app=env_app)

from hangar.cli.snapshots import install as _install_snapshot_commands  # noqa: E402

_install_snapshot_commands(env_app=env_app)

from hangar.cli.maintenance import install as _install_maintenance_commands  # noqa: E402

_install_maintenance_commands(env_app=env_app)

from hangar.cli.export import install as _install_export_commands  # noqa: E402

_install_export_commands(env_app=env_app)

# `hangar worker ...`: joined hosts and their tokens; `hangar worker join` is added to worker_app by its own module
from hangar.cli.workers import worker_app  # noqa: E402

app.add_typer(worker_app, name="worker")


if __name__ == "__main__":
    sys.exit(main())
