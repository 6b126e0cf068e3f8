"""Changing an environment's Airflow version in place: which paths exist, and the migration.

`plan_upgrade` is pure: it decides at request time whether a change of
airflow_version can be applied, so a path Hangar cannot take is refused with a
400 before anything changes. `migrate` and `downgrade` then move the metadata
database with the runtimes' own `airflow db` commands; the reconciler takes a
snapshot first and switches runtimes after.

What Airflow itself allows, read in 3.3.2's airflow/utils/db.py and measured on
real databases:
- Airflow 3's migrations start with a squash of 2.6.2 whose revision id differs
  from Airflow 2's, so `airflow db migrate` of a 3.x runtime accepts a database at
  2.7.0 or later. Hangar runs 2.11.x (head 5f2621c13b39, same schema as 2.10.3)
  and 3.x only, so every upgrade from a version Hangar runs is in that history.
- 2.11.x -> 3.x needs nothing but `airflow db migrate` of the 3.x runtime. It
  deletes serialized DAGs and DAG code (the 3.x dag-processor parses them again);
  runs and task instances stay. The FAB tables (ab_*) stay untouched, as Hangar's
  3.x runtimes have no FAB provider.
- `airflow db downgrade --to-version V` of the newer runtime maps V to the nearest
  known head at or below it, for 3.x and for 2.x alike. Down to 2.x it needs the
  FAB tables to exist already (or the FAB provider to create them), so only a
  database that came up from Airflow 2 can go back; one created on 3.x is refused
  by Airflow before anything changes.

Invariant: in `migrate` and `downgrade`, `old` is the older Airflow and `new` the
newer, whichever way the database moves.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hangar.schemas.versions import parse_version
from hangar.errors import MetadataDatabaseFailed, UnsupportedUpgradePath
from hangar.backend.identity import RunAs
from hangar.runtime.metadb import output_tail, run_airflow
from hangar.runtime.venvs import Progress, Runtime

UpgradeKind = Literal["none", "patch", "minor", "major", "downgrade"]

# The oldest Airflow Hangar runs on each major version.
_OLDEST = {2: (2, 11, 0), 3: (3, 0, 0)}


@dataclass(frozen=True, kw_only=True)
class UpgradePath:
    kind: UpgradeKind
    needs_migration: bool
    needs_snapshot: bool
    description: str


def plan_upgrade(*, current: str, target: str, allow_downgrade: bool) -> UpgradePath:
    """The way from `current` to `target`, or UnsupportedUpgradePath naming what to do instead."""
    now, then = _parse(current, current=current, target=target), _parse(target, current=current, target=target)
    if now == then:
        return UpgradePath(kind="none", needs_migration=False, needs_snapshot=False,
                           description=f"Airflow stays at {current}")
    for version, which in ((now, current), (then, target)):
        oldest = _OLDEST.get(version[0])
        if oldest is None or version < oldest:
            raise UnsupportedUpgradePath(
                current=current, target=target, reason=f"Hangar runs Airflow 2.11.x and 3.x, not {which}",
                instead="choose a 2.11.x or 3.x version",
            )
    if then < now:
        return _downgrade(current=current, target=target, allow_downgrade=allow_downgrade, major=then[0] < now[0])
    if then[0] > now[0]:
        return UpgradePath(
            kind="major", needs_migration=True, needs_snapshot=True,
            description=f"Airflow {current} -> {target}: `airflow db migrate` of {target}; runs and task instances "
                        "are kept, serialized DAGs are parsed again by the new dag-processor",
        )
    kind: UpgradeKind = "minor" if then[1] != now[1] else "patch"
    return UpgradePath(kind=kind, needs_migration=True, needs_snapshot=True,
                       description=f"Airflow {current} -> {target}: `airflow db migrate` of {target}")


def _downgrade(*, current: str, target: str, allow_downgrade: bool, major: bool) -> UpgradePath:
    if not allow_downgrade:
        raise UnsupportedUpgradePath(
            current=current, target=target, reason=f"{target} is older than {current}",
            instead="set allow_downgrade to downgrade the metadata database, or restore a snapshot taken on "
                    f"{target}",
        )
    caveat = ""
    if major:
        # measured: Airflow refuses this unless the database came up from Airflow 2 (see the module docstring)
        caveat = ("; only a database that was upgraded from Airflow 2 can go back, and runs without a logical "
                  "date are moved to _airflow_moved tables")
    return UpgradePath(
        kind="downgrade", needs_migration=True, needs_snapshot=True,
        description=f"Airflow {current} -> {target}: `airflow db downgrade --to-version {target}` of {current}{caveat}",
    )


def _parse(version: str, *, current: str, target: str) -> tuple[int, int, int]:
    try:
        return parse_version(version)
    except ValueError as exc:
        raise UnsupportedUpgradePath(current=current, target=target, reason=str(exc),
                                     instead="use a version like 3.3.2") from exc


def migrate(*, old: Runtime, new: Runtime, url: str, progress: Progress, run_as: RunAs | None = None) -> None:
    """Upgrade the database at `url`, last migrated by `old`, to the schema of `new`."""
    if parse_version(new.airflow_version) < parse_version(old.airflow_version):
        raise ValueError(f"migrate goes up, not from {old.airflow_version} to {new.airflow_version}; use downgrade")
    progress(f"migrating the metadata database from Airflow {old.airflow_version} to {new.airflow_version}")
    result = run_airflow(new, url, "db", "migrate", run_as=run_as)
    if result.returncode != 0:
        raise MetadataDatabaseFailed(
            f"`airflow db migrate` of Airflow {new.airflow_version} failed on the database of Airflow "
            f"{old.airflow_version} (exit {result.returncode}):\n{output_tail(result, 15)}"
        )
    progress(f"metadata database migrated to Airflow {new.airflow_version}")


def downgrade(*, old: Runtime, new: Runtime, url: str, progress: Progress, run_as: RunAs | None = None) -> None:
    """Downgrade the database at `url`, migrated by `new`, to the schema of the older `old`."""
    if parse_version(new.airflow_version) <= parse_version(old.airflow_version):
        raise ValueError(f"downgrade goes down, not from {new.airflow_version} to {old.airflow_version}")
    progress(f"downgrading the metadata database from Airflow {new.airflow_version} to {old.airflow_version}")
    result = run_airflow(new, url, "db", "downgrade", "--to-version", old.airflow_version, "-y", run_as=run_as)
    if result.returncode != 0:
        output = f"{result.stdout}\n{result.stderr}"
        cause = ""
        if "apache-airflow-provider-fab" in output:
            # raised before any schema change, so the database is still at new's schema
            cause = (" because the database was created on Airflow 3 and has no Airflow 2 user tables (ab_*); "
                     "it is unchanged. Create a new Airflow 2 environment instead")
        raise MetadataDatabaseFailed(
            f"`airflow db downgrade --to-version {old.airflow_version}` of Airflow {new.airflow_version} failed"
            f"{cause} (exit {result.returncode}):\n{output_tail(result, 15)}"
        )
    # the older runtime must find exactly its own head, or it would refuse to start
    check = run_airflow(old, url, "db", "check-migrations", "--migration-wait-timeout", "1", run_as=run_as)
    if check.returncode != 0:
        raise MetadataDatabaseFailed(
            f"after the downgrade, Airflow {old.airflow_version} does not accept the database's schema:\n"
            f"{output_tail(check, 15)}"
        )
    progress(f"metadata database downgraded to Airflow {old.airflow_version}")
