"""Who may reach the embedded PostgreSQL, and as whom, when environments run as their own users.

- The server also listens on 127.0.0.1, on a port of its own kept in `pgdata/hangar.port`.
- pg_hba.conf: over the socket, only the control plane's and the server's own system users,
  both mapped to `postgres` (peer). Over TCP, `postgres` is refused and every other role needs
  its password (scram-sha-256) and may open only the database named like it (sameuser). No
  connection without a password reaches the server from an environment.
- Each environment's database is owned by a role of the same name, with a password from the
  environment's encrypted secrets, and CONNECT on it is revoked from PUBLIC: a role reaches its
  own database only, and no environment role is a superuser.

Without isolation (not root) none of this is done: the server keeps pgserver's socket-only,
trust set-up, and the user who runs Hangar is the trust boundary.
"""
from __future__ import annotations

import os
import pwd
import socket
from pathlib import Path

from psycopg2 import sql

HBA = """# Written by Hangar (hangar.runtime.pg_access); rewritten at every start.
# The socket: the control plane and the server's own user, as postgres.
local   all   postgres                 peer map=hangar
local   all   all                      reject
# TCP: environments, each with its own role's password and to its own database only; never postgres.
host    all   postgres   127.0.0.1/32  reject
host    all   postgres   ::1/128       reject
host    sameuser  all    127.0.0.1/32  scram-sha-256
host    all   all        127.0.0.1/32  reject
"""


def ident(server_user: str) -> str:
    control_plane = pwd.getpwuid(os.geteuid()).pw_name
    return "".join(f"hangar {user} postgres\n" for user in sorted({control_plane, server_user}))


def write_access_files(pgdata: Path, *, server_user: str) -> bool:
    """pg_hba.conf and pg_ident.conf as above; True if either changed (the server must reload)."""
    owner = pgdata.stat()
    changed = False
    for name, text in (("pg_hba.conf", HBA), ("pg_ident.conf", ident(server_user))):
        path = pgdata / name
        if path.exists() and path.read_text() == text:
            continue
        tmp = path.with_suffix(".hangar-tmp")
        tmp.write_text(text)
        os.chown(tmp, owner.st_uid, owner.st_gid)
        tmp.chmod(0o600)
        os.replace(tmp, path)
        changed = True
    return changed


def tcp_port(pgdata: Path) -> int:
    """The loopback port the server listens on: chosen once, free at the time, kept in pgdata."""
    path = pgdata / "hangar.port"
    if path.exists():
        return int(path.read_text().strip())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path.write_text(f"{port}\n")
    return port


def ensure_role(cursor, *, database: str, password: str) -> None:
    """The database's own login role (named like it) with `password`, owning the database and
    everything in its schema `public`; nobody else may connect. `cursor` is a superuser's on
    the server's `postgres` database; the objects are changed through a second connection."""
    role = sql.Identifier(database)
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (database,))
    verb = "ALTER" if cursor.fetchone() else "CREATE"
    # every connection a component opens pays the SCRAM key derivation; the password is 32 random
    # bytes, so PostgreSQL's 4096 iterations against guessing add nothing but start-up time
    cursor.execute("SELECT 1 FROM pg_settings WHERE name = 'scram_iterations'")
    if cursor.fetchone():
        cursor.execute("SET scram_iterations = 16")
    cursor.execute(sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %s").format(role),
                   (password,))
    cursor.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(database), role))
    cursor.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)))


OWNED_OBJECTS = """
SELECT c.relkind, c.relname FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
   AND pg_get_userbyid(c.relowner) <> %(role)s
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')
                   AND d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass)
UNION ALL
SELECT 'T', t.typname FROM pg_type t
 WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('e', 'd') AND pg_get_userbyid(t.typowner) <> %(role)s
"""
_KIND = {"r": "TABLE", "p": "TABLE", "f": "FOREIGN TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE",
         "T": "TYPE"}


def give_objects(cursor, *, role: str) -> None:
    """Inside the database: the schema and every table, view, sequence and type in it to `role`
    (a table's own sequences follow the table)."""
    cursor.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(role)))
    cursor.execute(OWNED_OBJECTS, {"role": role})
    for kind, name in cursor.fetchall():
        cursor.execute(sql.SQL("ALTER " + _KIND[kind] + " public.{} OWNER TO {}").format(
            sql.Identifier(name), sql.Identifier(role)))
