"""`hangar env metrics`: an environment's metrics over the last minutes, from the control
plane's own time series (no Prometheus needed)."""
from __future__ import annotations

import json

import typer

from hangar.cli.client import call

metrics_app = typer.Typer()
DEFAULT_NAMES = ("hangar_environment_healthy", "hangar_airflow_heartbeat_age_seconds", "hangar_component_memory_bytes",
                 "hangar_component_cpu_seconds_total", "airflow_executor_queued_tasks", "airflow_executor_running_tasks")


@metrics_app.command("metrics")
def env_metrics(
    name: str,
    metric: list[str] = typer.Option([], "--name", help="a metric name (repeatable); all when --all"),
    every: bool = typer.Option(False, "--all", help="every metric the environment has"),
    minutes: float = typer.Option(60, "--minutes", help="how far back"),
    as_json: bool = typer.Option(False, "--json", help="every point of every series"),
) -> None:
    """Show an environment's metrics: each series' newest value, low and high over the period."""
    names = [] if every else (metric or [])
    series = call("GET", f"/api/v1/environments/{name}/metrics", params={"names": names, "minutes": minutes})
    if not every and not metric:
        series = [s for s in series if s["name"] in DEFAULT_NAMES]
    if as_json:
        print(json.dumps(series))
        return
    if not series:
        print(f"no samples of {name} in the last {minutes:g} minutes")
    for entry in series:
        labels = ",".join(f"{k}={v}" for k, v in sorted(entry["labels"].items()))
        values = [point[1] for point in entry["points"]]
        title = f"{entry['name']}{{{labels}}}" if labels else entry["name"]
        print(f"{title:<72} now {values[-1]:<12g} low {min(values):<12g} high {max(values):<12g} ({len(values)} samples)")
