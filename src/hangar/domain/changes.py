"""The change plan: what an update does, decided by comparing the running revision
with the new one, so that every update takes the least disruptive path.

    NONE     metadata only (tags, schedules, maintenance window): nothing restarts
    DAGS     the DAGs link is swapped: nothing restarts, Airflow sees the files in seconds
    CONFIG   configuration or environment variables: only the components that read what
             changed restart; those without the web port together, each proving itself
             healthy and running its Airflow job, then the web server
    RUNTIME  requirements, plugins or the startup script: a new runtime is built and
             checked next to the running one, then every component switches to it
    UPGRADE  the Airflow version: as RUNTIME, with a snapshot of the metadata database
             and `airflow db migrate` before the switch

The same plan drives the reconciler and `hangar env update --dry-run`, so what the
dry run prints is what the update does. Which components read which configuration is
the runtime's knowledge (hangar.runtime.airflow_config.SECTION_READERS).
"""
from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field

from hangar.backend.components import REPLACE_ORDER, components_for
from hangar.schemas.spec import Executor, Spec
from hangar.schemas.versions import parse_version
from hangar.runtime import airflow_config

_PORTS = {"web": 1, "worker_logs": 2, "trigger_logs": 3}  # ports never change between revisions


class ChangeKind(StrEnum):
    NONE = "none"
    DAGS = "dags"
    CONFIG = "config"
    RUNTIME = "runtime"
    UPGRADE = "upgrade"


# spec fields (and bucket source fields) by the path a change of them takes
RUNTIME_FIELDS = frozenset({
    "executor",  # a Celery runtime carries the Celery provider
    "requirements", "plugins", "plugins_sha256", "startup_script",
    "source.requirements_s3_path", "source.requirements_s3_object_version",
    "source.plugins_s3_path", "source.plugins_s3_object_version",
    "source.startup_script_s3_path", "source.startup_script_s3_object_version",
})
DAG_FIELDS = frozenset({"dags", "source", "source.bucket", "source.dag_s3_path", "git"})
METADATA_FIELDS = frozenset({
    "tags", "snapshot_schedule", "snapshot_retention", "weekly_maintenance_window_start", "kms_key",
    "execution_role_arn", "network_configuration",
})


class PackageChange(BaseModel):
    name: str
    old: str | None = None
    new: str | None = None


class ChangePlan(BaseModel):
    from_revision: int | None
    to_revision: int | None
    kind: ChangeKind
    changed: list[str] = Field(default_factory=list, description="spec fields that differ")
    restart: list[str] = Field(default_factory=list, description="components restarted, in order")
    airflow: str | None = Field(default=None, description="the Airflow version change, e.g. '3.2.2 -> 3.3.2'")
    packages: list[PackageChange] | None = Field(default=None, description="the resolved package diff")
    steps: list[str] = Field(default_factory=list)


def changed_fields(old: Spec, new: Spec) -> list[str]:
    before, after = old.model_dump(mode="json"), new.model_dump(mode="json")
    fields = []
    for name in sorted(set(before) | set(after)):
        if before.get(name) == after.get(name):
            continue
        if name == "source" and before.get(name) and after.get(name):
            fields += [f"source.{k}" for k in sorted(after[name]) if before[name].get(k) != after[name].get(k)]
        else:
            fields.append(name)
    return fields


def roles(spec: Spec) -> list[str]:
    """The kinds of component `spec` runs, in REPLACE_ORDER (several schedulers are one role)."""
    present = {c.role for c in components_for(parse_version(spec.airflow_version)[0])}
    if spec.executor == Executor.celery:
        present.add("worker")
    return [r for r in REPLACE_ORDER if r in present]


def restarts(old: Spec, new: Spec, *, root: Path) -> list[str]:
    """Roles whose configuration, environment variables, log level or command differ."""
    names = roles(new)
    layout = airflow_config.EnvironmentLayout(root=root)

    def view(spec: Spec) -> dict[str, tuple]:
        digests = airflow_config.config_digests(airflow_config.render_cfg(spec=spec, layout=layout, ports=_PORTS), names)
        command = {"worker": spec.worker_concurrency}
        return {n: (digests[n], spec.environment_variables, airflow_config.component_env(spec, n), command.get(n))
                for n in names}

    before, after = view(old), view(new)
    return [n for n in names if before[n] != after[n]]


def plan_change(old: Spec, new: Spec, *, root: Path, from_revision: int | None = None,
                to_revision: int | None = None) -> ChangePlan:
    fields = changed_fields(old, new)
    everything = roles(new)
    plan = ChangePlan(from_revision=from_revision, to_revision=to_revision, kind=ChangeKind.NONE, changed=fields)
    if "airflow_version" in fields:
        plan.kind, plan.restart = ChangeKind.UPGRADE, everything
        plan.airflow = f"{old.airflow_version} -> {new.airflow_version}"
        plan.steps = [
            f"build and check a runtime for Airflow {new.airflow_version}",
            "drain the scheduler and stop the components",
            "snapshot the metadata database",
            f"migrate the metadata database to Airflow {new.airflow_version}",
            "start every component on the new runtime",
        ]
    elif RUNTIME_FIELDS & set(fields):
        plan.kind, plan.restart = ChangeKind.RUNTIME, everything
        plan.steps = ["build the new runtime next to the running one",
                      "pre-flight: import requirements and plugins, run the startup script, parse the DAGs",
                      *[f"switch {n} to the new runtime" for n in everything]]
    else:
        restart = restarts(old, new, root=root)
        if restart:
            plan.kind, plan.restart = ChangeKind.CONFIG, restart
            plan.steps = [f"restart {n}" + (" (draining its running tasks)" if n in ("scheduler", "worker") else "")
                          for n in restart]
        elif DAG_FIELDS & set(fields):
            plan.kind = ChangeKind.DAGS
            plan.steps = ["point the DAGs folder at the new DAGs; nothing restarts"]
        elif "schedulers" in fields:
            plan.kind = ChangeKind.CONFIG
            plan.steps = [f"run {new.schedulers} schedulers (one that goes drains its running tasks)"]
        else:
            plan.steps = ["record the new revision; nothing restarts"]
        if plan.kind == ChangeKind.CONFIG and "schedulers" in fields and plan.restart:
            plan.steps.append(f"run {new.schedulers} schedulers (one that goes drains its running tasks)")
    if {"min_workers", "max_workers"} & set(fields) and new.executor == Executor.celery:
        plan.steps.append(f"autoscale between {new.min_workers} and {new.max_workers} workers")
    if plan.kind != ChangeKind.NONE and DAG_FIELDS & set(fields) and plan.kind != ChangeKind.DAGS:
        plan.steps.insert(0, "point the DAGs folder at the new DAGs")
    return plan


_LONG_TEXT = ("startup_script", "requirements")  # shown by size, not content: they may be long


def describe_changes(old: Spec | None, new: Spec) -> list[str]:
    """One line per changed field, `field: old -> new`, for `hangar env history`."""
    if old is None:
        return ["created"]
    before, after = old.model_dump(mode="json"), new.model_dump(mode="json")
    lines = []
    for field in changed_fields(old, new):
        top, _, sub = field.partition(".")
        a, b = before.get(top), after.get(top)
        if sub:
            a, b = (a or {}).get(sub), (b or {}).get(sub)
        if top in ("airflow_configuration_options", "environment_variables", "tags") and isinstance(a, dict):
            keys = sorted(set(a) | set(b or {}))
            parts = [f"{k}: {a.get(k)!r} -> {(b or {}).get(k)!r}" for k in keys if a.get(k) != (b or {}).get(k)]
            lines.append(f"{field}: " + ", ".join(parts))
        elif top == "requirements" and (a or b):
            old_lines, new_lines = set((a or "").splitlines()), set((b or "").splitlines())
            added = sorted(x for x in new_lines - old_lines if x.strip())
            removed = sorted(x for x in old_lines - new_lines if x.strip())
            lines.append("requirements: " + ", ".join([*(f"+{x}" for x in added), *(f"-{x}" for x in removed)]))
        elif top in _LONG_TEXT:
            lines.append(f"{field}: {len(a or '')} -> {len(b or '')} characters")
        else:
            lines.append(f"{field}: {a!r} -> {b!r}")
    return lines
