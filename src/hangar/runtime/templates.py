"""Template metadata databases kept as dumps next to their runtime, so each new HANGAR_HOME
restores a template instead of running `airflow db migrate` for it again.

Every home's embedded PostgreSQL needs one migrated template per runtime key. Migrating
starts Airflow and runs all its migrations; restoring a pg_dump of the result does neither
(measured for Airflow 3.3.2: 8.0 s against 0.6 s, medians of 8). After a template's first
migration its dump is saved in the runtimes folder, which several homes may share
(HANGAR_RUNTIMES_DIR), and EmbeddedPostgres.ensure_template restores it.

Invariants:
- A dump is used only for the template of its own runtime key (hence the same Airflow,
  providers and requirements), on a server of the same PostgreSQL major, and as written by
  the same template procedure (FORMAT): all three are in its file name, with the Airflow
  version for people reading the folder.
- A dump is written under a temporary name of its own and renamed over the final name, so
  a reader opens a whole dump or none; two homes saving one at once each write a whole one.
- A restore that fails, or yields a database without an Alembic revision, leaves no
  database behind: the caller migrates instead and its save replaces the dump.
- A dump holds nothing secret: right after `airflow db migrate` the database has no
  connections, variables or other fernet-encrypted rows, and Airflow 2's role users have
  random passwords that were never kept (only their hashes are stored).
- Only ensure_template writes or reads dumps, and nothing deletes one another home may read
  (a stale temporary file of a dead save is the only thing removed).
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import psycopg2

from hangar.errors import HangarError, TemporaryError
from hangar.runtime.venvs import Runtime

if TYPE_CHECKING:
    from hangar.runtime.embedded_postgres import EmbeddedPostgres

log = logging.getLogger(__name__)

# Raised when what a template holds after migrating changes (e.g. more rows Hangar adds),
# so dumps of the old procedure are no longer used.
FORMAT = 1
# A save takes well under a second; a temporary file this old was left by one that died.
_STALE_SECONDS = 3600.0


def server_major(postgres: EmbeddedPostgres) -> int:
    with postgres.admin() as cursor:
        cursor.execute("SHOW server_version_num")
        return int(cursor.fetchone()[0]) // 10000


def dump_path(runtime: Runtime, *, pg_major: int) -> Path:
    """Where the template dump of `runtime` for a PostgreSQL `pg_major` server lives."""
    name = f"{runtime.key}.template-v{FORMAT}.pg{pg_major}.airflow-{runtime.airflow_version}.dump"
    return runtime.path.parent / name


def restore(postgres: EmbeddedPostgres, database: str, path: Path, *, progress: Callable[[str], None]) -> bool:
    """Create `database` from the dump at `path`; False (and no database) when there is none
    or it cannot be used, with the reason logged."""
    if not path.is_file():
        return False
    started = time.monotonic()
    try:
        postgres.restore(database, path)
        revision = _alembic_revision(postgres, database)
        if revision is None:
            raise ValueError("the restored database has no Alembic revision")
    except TemporaryError:
        raise  # the server, not the dump: migrating would fail the same way
    except (HangarError, psycopg2.Error, OSError, ValueError) as exc:
        log.warning("template dump %s was not usable, migrating instead: %s", path, exc)
        progress(f"template dump {path.name} was not usable ({str(exc).splitlines()[0][:200]}); migrating instead")
        postgres.drop(database)
        return False
    log.info("template %s restored from %s (Alembic revision %s) in %.2f s", database, path, revision,
             time.monotonic() - started)
    progress(f"template database restored from {path.name}")
    return True


def save(postgres: EmbeddedPostgres, database: str, path: Path) -> None:
    """Dump the freshly migrated `database` to `path`; a failure is logged, the template stays good."""
    _remove_stale(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    try:
        postgres.dump(database, tmp)
        os.replace(tmp, path)
    except (HangarError, OSError) as exc:
        log.warning("could not save template dump %s (the next home will migrate): %s", path, exc)
    finally:
        tmp.unlink(missing_ok=True)


def _remove_stale(path: Path) -> None:
    try:
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):
            if time.time() - tmp.stat().st_mtime > _STALE_SECONDS:
                tmp.unlink(missing_ok=True)
    except OSError:
        pass


def _alembic_revision(postgres: EmbeddedPostgres, database: str) -> str | None:
    connection = postgres.connect(database)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('public.alembic_version') IS NOT NULL")
            if not cursor.fetchone()[0]:
                return None
            cursor.execute("SELECT version_num FROM alembic_version LIMIT 1")
            row = cursor.fetchone()
        return row[0] if row else None
    finally:
        connection.close()
