"""How the CLI prints an environment and a change plan, as text or as JSON (--json).

Text goes through rich with markup only where Hangar wrote it: any value that came from a user
(a reason, an error message, a package name) is printed with markup off.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from rich.console import Console

out = Console()


def print_env(env: dict, as_json: bool) -> None:
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
                  f"{workers['max']}, {workers['concurrency']} tasks each), {workers.get('ready', 0)} ready; "
                  f"tasks queued {workers['queued_tasks']}, running {workers['running_tasks']}")
    git = env.get("git")
    if git:
        spec_git = (env.get("spec") or {}).get("git") or {}
        served = f"commit {git['commit'][:12]} ({git.get('committed_at') or '?'})" if git.get("commit") else "nothing yet"
        out.print(f"  git: {spec_git.get('url', '')} {spec_git.get('ref', '')}: serving {served}, fetched "
                  f"{git.get('fetched_at') or 'never'}", markup=False)
        if git.get("last_error"):
            out.print(f"  last git sync failed ({git.get('last_error_at')}): {git['last_error']}", markup=False)
    for component in env.get("components", []):
        out.print(f"  {component['name']:<14} {component['state']:<9} pid {component['pid']}  restarts {component['restarts']}")


def print_plan(plan: dict, as_json: bool) -> None:
    """What `hangar env update --dry-run` would change."""
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


def show(data: Any, as_json: bool, render: Callable[[Any], None], *, indent: int | None = 2) -> None:
    """Print what the API answered: as JSON with --json, else as `render` draws it for people."""
    if as_json:
        print(json.dumps(data, indent=indent))
    else:
        render(data)
