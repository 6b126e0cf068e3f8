"""`hangar alert`: rules that watch environments and say so by webhook, Slack or email."""
from __future__ import annotations

import sys
from typing import Optional

import typer

from hangar.cli.client import call, fail
from hangar.cli.output import show

alert_app = typer.Typer(no_args_is_help=True, help="Alerts on environments: webhook, Slack or email.")
EVENTS = ("status_changed, update_failed, scheduler_heartbeat_missing (seconds), task_queued_too_long (minutes), "
          "dag_run_failed, task_running_too_long (minutes), dag_import_errors, workers_at_max (minutes)")


@alert_app.command("create")
def alert_create(
    name: str,
    environment: Optional[str] = typer.Option(None, "--environment", "-e", help="the environment to watch"),
    every: bool = typer.Option(False, "--all", help="watch every environment"),
    on: str = typer.Option(..., "--on", help=f"the event: {EVENTS}"),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="seconds or minutes, as the event takes"),
    dag: Optional[str] = typer.Option(None, "--dag", help="dag_run_failed: this DAG only"),
    webhook: Optional[str] = typer.Option(None, "--webhook", help="a URL that gets signed JSON"),
    secret: Optional[str] = typer.Option(None, "--secret", help="the webhook's HMAC-SHA256 key"),
    slack_webhook: Optional[str] = typer.Option(None, "--slack-webhook", help="a Slack incoming-webhook URL"),
    email: Optional[str] = typer.Option(None, "--email", help="an address (SMTP: hangar alert smtp)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create an alert rule."""
    body = {"name": name, "environment": environment, "all_environments": every, "event": on, "threshold": threshold,
            "dag": dag, "webhook": webhook, "secret": secret, "slack_webhook": slack_webhook, "email": email}
    show(call("POST", "/api/v1/alerts", json={k: v for k, v in body.items() if v not in (None, False)}), as_json,
         lambda rule: _print_rules([rule]))


@alert_app.command("list")
def alert_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List alert rules (targets shown by scheme and host only)."""
    show(call("GET", "/api/v1/alerts"), as_json, _print_rules)


def _print_rules(rules: list[dict]) -> None:
    for rule in rules:
        threshold = f" > {rule['threshold']:g} {rule['threshold_unit']}" if rule.get("threshold_unit") else ""
        dag = f" (DAG {rule['dag']})" if rule.get("dag") else ""
        signed = ", signed" if rule["signed"] else ""
        print(f"{rule['name']:<24} {rule['environment'] or '(all)':<16} {rule['event']}{threshold}{dag} -> "
              f"{rule['delivery']} {rule['target']}{signed}")


@alert_app.command("delete")
def alert_delete(name: str) -> None:
    call("DELETE", f"/api/v1/alerts/{name}")
    print(f"deleted alert {name}")


@alert_app.command("test")
def alert_test(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Send a test notice to the rule's target (see hangar alert history)."""
    show(call("POST", f"/api/v1/alerts/{name}/test"), as_json,
         lambda d: print(f"test delivery {d['id']} queued for alert {d['alert']}"))


@alert_app.command("history")
def alert_history(name: Optional[str] = typer.Argument(None), limit: int = typer.Option(50, "--limit"),
                  as_json: bool = typer.Option(False, "--json")) -> None:
    """Every delivery, newest first: alerts, resolved notices and tests, with their attempts."""
    params = {"limit": limit, **({"alert": name} if name else {})}
    show(call("GET", "/api/v1/alerts/history", params=params), as_json, _print_history)


def _print_history(deliveries: list[dict]) -> None:
    for d in deliveries:
        error = f"  last error: {d['last_error']}" if d.get("last_error") else ""
        print(f"{d['created_at'][:19]} {d['alert']:<20} {d['kind']:<8} {d['state']:<9} attempts {d['attempts']}  "
              f"{d['summary']}{error}")


@alert_app.command("smtp")
def alert_smtp(
    host: str = typer.Option(..., "--host"), port: int = typer.Option(587, "--port"),
    starttls: bool = typer.Option(True, "--starttls/--no-starttls"), user: Optional[str] = typer.Option(None, "--user"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="read the password from standard input"),
    sender: str = typer.Option("hangar@localhost", "--sender"),
) -> None:
    """Set the SMTP server email alerts go through (the password is encrypted and never shown)."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    if password_stdin and not password:
        fail("--password-stdin: no password on standard input")
    body = {"host": host, "port": port, "starttls": starttls, "user": user, "password": password, "sender": sender}
    answer = call("PUT", "/api/v1/alerts/smtp", json=body)
    print(f"SMTP {answer['host']}:{answer['port']} (STARTTLS {'on' if answer['starttls'] else 'off'}, "
          f"password {'set' if answer['password_set'] else 'not set'})")
