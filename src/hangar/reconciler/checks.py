"""Checks before a switch: the broker answers, and the new runtime imports the requirements and
plugins, runs the startup script and parses the DAGs no worse than the running one.

A check that fails raises before anything running changes, so the old revision serves on.
"""
from __future__ import annotations

from pathlib import Path

from hangar.backend import identity
from hangar.context import Context
from hangar.errors import CeleryBrokerNotConfigured
from hangar.reconciler.journal import Journal
from hangar.reconciler.launching import launch_plan
from hangar.reconciler.staging import Target
from hangar.runtime import airflow_config, broker, preflight
from hangar.schemas.spec import Executor


def check_broker(ctx: Context, journal: Journal, target: Target) -> None:
    """A Celery revision starts only when its broker answers (checked again here: the broker
    may have gone away since the request was accepted)."""
    if target.spec.executor != Executor.celery:
        return
    url = ctx.settings.celery_broker_url
    if not url:
        raise CeleryBrokerNotConfigured()
    journal.record("checking the Celery broker")
    broker.check_reachable(url)



def preflight_checks(ctx: Context, journal: Journal, target: Target, old: Target) -> None:
    """Check the new runtime before anything switches; a failure leaves the old revision serving."""
    check_broker(ctx, journal, target)
    env = preflight_env(ctx, target)
    timeout = ctx.settings.startup_timeout
    if target.spec.requirements and target.runtime.key != old.runtime.key:
        journal.record("pre-flight: importing the requirements in the new runtime")
        preflight.check_imports(runtime=target.runtime, requirements=target.spec.requirements, env=env,
                                run_as=target.run_as)
    if target.plugins_dir != old.plugins_dir or target.runtime.key != old.runtime.key:
        journal.record("pre-flight: importing the plugins in the new runtime")
        preflight.check_plugins(runtime=target.runtime, plugins_dir=target.plugins_dir, env=env, run_as=target.run_as)
    if target.spec.startup_script:
        journal.record("pre-flight: running the startup script in a sandbox")
        result = preflight.check_startup_script(script=target.spec.startup_script, env=env, timeout=timeout,
                                                run_as=target.run_as)
        for warning in getattr(result, "warnings", []):
            journal.record(f"pre-flight: {warning}")
    if target.runtime.key != old.runtime.key:
        journal.record("pre-flight: parsing the DAGs with the new runtime")
        new_errors = preflight.parse_dags(runtime=target.runtime, dags_dir=Path(target.dags), env=env,
                                          run_as=target.run_as)
        if new_errors:
            old_errors = preflight.parse_dags(runtime=old.runtime, dags_dir=Path(old.dags), env=preflight_env(ctx, old),
                                              run_as=old.run_as)
            broken = preflight.new_dag_errors(old_errors, new_errors)
            if broken:
                raise preflight.DagImportErrors(broken)
    journal.record("pre-flight passed")



def preflight_env(ctx: Context, target: Target) -> dict[str, str]:
    """The components' environment, reading the revision's configuration from a side file."""
    env = dict(launch_plan(ctx, target).env)
    side = target.layout.root / f"airflow.r{target.revision}.cfg"
    airflow_config.write_cfg_file(side, target.cfg_text)
    identity.give(side, target.run_as)
    env["AIRFLOW_CONFIG"] = str(side)
    return env

