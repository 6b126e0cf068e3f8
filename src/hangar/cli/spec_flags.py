"""What `hangar env create` and `hangar env update` send: the request body their flags make.

Files named by a flag are read here (requirements, startup script) or sent as absolute paths
(DAGs, plugins), so the control plane never resolves a path relative to where the CLI ran. A
flag given a value it cannot take fails with one line before anything is sent.
"""
from __future__ import annotations

from pathlib import Path

from hangar.cli.client import fail


def pairs(values: list[str], flag: str) -> dict[str, str]:
    result = {}
    for value in values:
        if "=" not in value:
            fail(f"{flag} {value!r} must look like KEY=VALUE")
        key, _, val = value.partition("=")
        result[key.strip()] = val
    return result


def spec_body(dags, airflow_version, requirements, config, env, env_class) -> dict:
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
        body["airflow_configuration_options"] = pairs(config, "--config")
    if env:
        body["environment_variables"] = pairs(env, "--env")
    if env_class is not None:
        body["environment_class"] = env_class
    return body


def scale_body(executor, min_workers, max_workers, schedulers, worker_concurrency) -> dict:
    given = {"executor": executor, "min_workers": min_workers, "max_workers": max_workers, "schedulers": schedulers,
             "worker_concurrency": worker_concurrency}
    return {k: v for k, v in given.items() if v is not None}


def extras_body(plugins, startup_script, maintenance_window, snapshot_schedule, snapshot_retention) -> dict:
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


def git_body(url, ref, subdir, credential, interval) -> dict:
    """The spec's git field from --dags-git and its companions (the credential by name only)."""
    if url is None:
        if any(v is not None for v in (ref, subdir, credential, interval)):
            fail("--git-ref, --git-subdir, --git-credential and --git-interval go with --dags-git URL")
        return {}
    git = {"url": url, "ref": ref, "subdir": subdir, "credential": credential, "sync_interval": interval}
    return {"git": {k: v for k, v in git.items() if v is not None}}
