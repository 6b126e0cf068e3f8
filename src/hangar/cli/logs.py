"""`hangar env logs`: an environment's component logs, filtered, and followed as they come."""
from __future__ import annotations

import json
import sys
from typing import Optional
from urllib.parse import quote

import httpx
import typer

from hangar.cli.client import Client, ClientError, call, fail
from hangar.http_errors import error_answer

logs_app = typer.Typer()


def _line(entry: dict, as_json: bool) -> str:
    if as_json:
        return json.dumps(entry)
    return f"{entry['time']} {entry['component']:<14} {entry['level']:<8} {entry['message']}"


@logs_app.command("logs")
def env_logs(
    name: str,
    component: list[str] = typer.Option([], "--component", "-c",
                                        help="a component (worker-2) or role (worker); repeatable"),
    level: Optional[str] = typer.Option(None, "--level", help="this level and above: DEBUG INFO WARNING ERROR CRITICAL"),
    since: Optional[str] = typer.Option(None, "--since", help="10m, 2h, 7d or an ISO 8601 time"),
    until: Optional[str] = typer.Option(None, "--until", help="10m, 2h, 7d or an ISO 8601 time"),
    grep: Optional[str] = typer.Option(None, "--grep", help="only lines that hold this text"),
    tail: int = typer.Option(1000, "--tail", "-n", help="the newest this many lines"),
    follow: bool = typer.Option(False, "--follow", "-f", help="go on printing new lines until interrupted"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
) -> None:
    """Print an environment's component logs (api-server, schedulers, dag-processor, triggerer,
    workers, and the control plane's own lines as "hangar"), oldest first."""
    params: dict = {"component": component, "limit": tail, "follow": follow}
    params.update({k: v for k, v in (("level", level), ("since", since), ("until", until), ("grep", grep)) if v})
    try:
        client = Client.from_environment()
        path = f"/api/v1/environments/{name}/logs"
        if not follow:
            entries = client.request("GET", path, params=params, timeout=120)
            sys.stdout.write("".join(_line(e, as_json) + "\n" for e in entries))
            return
        _follow(client, path, params, as_json)
    except ClientError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        raise typer.Exit(0)


def _follow(client: Client, path: str, params: dict, as_json: bool) -> None:
    headers = {"Authorization": f"Bearer {client.key}"} if client.key else {}
    try:
        with httpx.stream("GET", f"{client.url}{path}", params=params, headers=headers,
                          timeout=httpx.Timeout(30, read=None)) as response:
            if response.status_code >= 400:
                response.read()
                answer = error_answer(response, method="GET", path=path)
                raise ClientError(answer.message if answer else f"HTTP {response.status_code}")
            for raw in response.iter_lines():
                if raw.strip():
                    print(_line(json.loads(raw), as_json), flush=True)
    except httpx.HTTPError as exc:
        raise ClientError(f"lost the control plane at {client.url}: {exc}") from None


@logs_app.command("task-logs")
def env_task_logs(
    name: str, dag_id: str, run_id: str, task_id: str,
    try_number: Optional[int] = typer.Option(None, "--try", help="the try to read (default: the latest)"),
    map_index: int = typer.Option(-1, "--map-index", help="the mapped task instance's index"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Print a task instance's log, wherever the task ran, as Airflow's UI shows it."""
    params: dict = {"map_index": map_index}
    if try_number is not None:
        params["try_number"] = try_number
    parts = "/".join(quote(part, safe="") for part in (dag_id, run_id, task_id))
    answer = call("GET", f"/api/v1/environments/{name}/task-logs/{parts}", params=params, timeout=120)
    if as_json:
        print(json.dumps(answer))
    else:
        sys.stdout.write(answer["content"] if answer["content"].endswith("\n") else answer["content"] + "\n")
