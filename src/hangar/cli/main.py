"""`hangar`: the CLI. Every command but `server` is a client of the HTTP API.

Failures print one line on stderr and exit 1; `--wait` exits 1 when the
environment ends in a *_FAILED status or its update failed and rolled back.

This module only assembles the command groups, each defined in a module of its own; it is the
one place where a group or command joins the CLI, in the order `--help` lists them.

Importing this module stays cheap (Typer, rich, httpx): what only `server`, `up` or `worker join`
need (the API app, the store, the runtime builder, even pydantic's Settings) is imported when
those commands run. tests/unit/cli/test_startup_imports.py holds the line.
"""
from __future__ import annotations

import sys

import typer

from hangar.cli.access import access_key_app, audit_app
from hangar.cli.alerts import alert_app
from hangar.cli.git import git_credential_app, git_env_app
from hangar.cli.bucket import bucket_app
from hangar.cli.env import env_app
from hangar.cli.export import export_app
from hangar.cli.history import history_app
from hangar.cli.keys import kms_app
from hangar.cli.logs import logs_app
from hangar.cli.metrics import metrics_app
from hangar.cli.maintenance import maintenance_app
from hangar.cli.server import server_app
from hangar.cli.snapshots import snapshot_app
from hangar.cli.up import up_app
from hangar.cli.workers import worker_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Hangar: managed Apache Airflow on your own machines.")

# `hangar env ...`: its own commands, then the revisions, the Helm export, snapshots and maintenance
env_app.add_typer(history_app)
env_app.add_typer(git_env_app)
env_app.add_typer(logs_app)
env_app.add_typer(metrics_app)
env_app.add_typer(export_app)
env_app.add_typer(snapshot_app, name="snapshot")
env_app.add_typer(maintenance_app, name="maintenance")

app.add_typer(up_app)
app.add_typer(audit_app)
app.add_typer(server_app, name="server")
app.add_typer(env_app, name="env")
app.add_typer(access_key_app, name="access-key")
app.add_typer(bucket_app, name="bucket")
app.add_typer(kms_app, name="key")
app.add_typer(worker_app, name="worker")
app.add_typer(alert_app, name="alert")
app.add_typer(git_credential_app, name="git-credential")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
