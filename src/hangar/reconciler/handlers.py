"""The steps that turn an operation record into running (or removed) processes.

Every step is idempotent, so an operation interrupted by a control-plane crash
is simply run again from the top on restart: a cached runtime is reused, a ready
template is kept, an existing database is not copied twice, and running
processes are adopted rather than started twice. Each finished step is appended
to the operation's record with a UTC timestamp.
"""
from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet

from hangar.backend.local import EnvironmentProcesses, LaunchPlan
from hangar.context import Context
from hangar.domain.environments import ROTATE_FERNET
from hangar.domain.lifecycle import change_status
from hangar.domain.spec import Spec, parse_version
from hangar.domain.status import Status
from hangar.errors import ComponentFailed, HangarError, PermanentError
from hangar.backend.components import PORT_NAMES, components_for
from hangar.reconciler.queue import Work
from hangar.reconciler import snapshots as snapshot_work
from hangar.buckets import store as buckets
from hangar.runtime import airflow_config, metadb, plugins, ports
from hangar.runtime.venvs import Runtime, ensure_runtime
from hangar.store import repository
from hangar.store.models import OperationRow, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Target:
    """What one revision of one environment needs to run."""

    env_id: str
    name: str
    revision: int
    spec: Spec
    runtime: Runtime
    layout: airflow_config.EnvironmentLayout
    ports: dict[str, int]
    db_url: str


class Reconciler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # --- entry points for the queue ---

    def handle(self, work: Work) -> None:
        with self.ctx.store.session() as session:
            operation = session.get_one(OperationRow, work.operation_id)
            if operation.done:
                return
            operation.attempts += 1
            kind, revision = operation.kind, operation.revision
        {"create": self._create, "update": self._update, "delete": self._delete,
         ROTATE_FERNET: self._rotate_fernet, **snapshot_work.handlers(self)}[kind](work, revision)

    def fail(self, work: Work, exc: Exception) -> None:
        code = getattr(exc, "code", "INTERNAL_ERROR")
        message = exc.message if isinstance(exc, HangarError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, HangarError):
            log.exception("operation %s failed unexpectedly", work.operation_id, exc_info=exc)
        with self.ctx.store.session() as session:
            operation = session.get_one(OperationRow, work.operation_id)
            env = repository.get_by_id(session, work.env_id)
            operation.done = True
            operation.steps = [*operation.steps, {"step": "failed", "at": utcnow().isoformat(), "error": message}]
            if operation.kind in ("create", snapshot_work.CLONE):
                change_status(session, env, Status.CREATE_FAILED, reason=message, error_code=code, error_message=message)
            elif operation.kind in ("update", ROTATE_FERNET, snapshot_work.RESTORE):
                change_status(session, env, Status.UPDATE_FAILED, reason=message, error_code=code, error_message=message)
            elif operation.kind == snapshot_work.SNAPSHOT and env.status == Status.CREATING_SNAPSHOT:
                # the environment kept running: back to AVAILABLE, the error kept in the event's reason
                change_status(session, env, Status.AVAILABLE, reason=f"snapshot failed: {message}")
            elif operation.kind == snapshot_work.SNAPSHOT:
                env.status_reason = f"snapshot failed: {message}"
            else:
                env.status_reason = f"delete failed, will retry on the next delete: {message}"
        if operation.kind in ("create", snapshot_work.CLONE):
            self.ctx.backend.stop_environment(work.env_id)
        elif operation.kind in ("update", ROTATE_FERNET, snapshot_work.RESTORE):
            self.ctx.backend.watch(work.env_id)

    # --- operations ---

    def _create(self, work: Work, revision: int) -> None:
        self.ctx.backend.watch(work.env_id, False)
        target = self._prepare(work, revision)
        processes = self._launch(work, target)
        self._wait_ready(work, processes)
        self._finish(work, revision, Status.AVAILABLE, f"revision {revision} is running")

    def _update(self, work: Work, revision: int) -> None:
        self.ctx.backend.watch(work.env_id, False)
        with self.ctx.store.session() as session:
            env = repository.get_by_id(session, work.env_id)
            previous = env.running_revision
            old_spec = repository.get_spec(session, env.id, previous) if previous else None
        target = self._prepare(work, revision)
        if old_spec and old_spec.airflow_version != target.spec.airflow_version:
            self._step(work, f"migrating the metadata database to Airflow {target.spec.airflow_version}")
            metadb.migrate(runtime=target.runtime, url=target.db_url)
        processes = self._launch(work, target)
        try:
            self._wait_ready(work, processes)
        except ComponentFailed as exc:
            if previous is None:
                raise
            self._roll_back(work, previous, exc)
            return
        self._finish(work, revision, Status.AVAILABLE, f"revision {revision} is running")

    def _delete(self, work: Work, revision: int) -> None:
        self.ctx.backend.watch(work.env_id, False)
        with self.ctx.store.session() as session:
            env = repository.get_by_id(session, work.env_id)
            database = env.database_name
        root = self._layout(work.env_id).root
        self._step(work, "stopping components")
        self.ctx.backend.stop_environment(work.env_id, root)
        if database:
            self._step(work, f"dropping database {database}")
            self.ctx.postgres.drop(database)
        self._step(work, "removing files")
        shutil.rmtree(root, ignore_errors=True)
        self._finish(work, revision, Status.DELETED, "deleted")

    def _roll_back(self, work: Work, previous: int, exc: ComponentFailed) -> None:
        with self.ctx.store.session() as session:
            env = repository.get_by_id(session, work.env_id)
            change_status(session, env, Status.ROLLING_BACK, reason=f"rolling back to revision {previous}: {exc.message}",
                          error_code=exc.code, error_message=exc.message)
        target = self._prepare(work, previous)
        processes = self._launch(work, target)
        self._wait_ready(work, processes)
        with self.ctx.store.session() as session:
            env = repository.get_by_id(session, work.env_id)
            env.running_revision = previous
            change_status(session, env, Status.AVAILABLE, reason=f"rolled back to revision {previous}")
            operation = session.get_one(OperationRow, work.operation_id)
            operation.done = True
        self.ctx.backend.watch(work.env_id)

    # --- fernet key rotation ---
    #
    # Airflow's MultiFernet encrypts with the first key of [core] fernet_key and decrypts
    # with any. The new key is stored (as FERNET_NEXT) before any component sees it, and
    # while it is stored every launch plan gives the components "new,old" (launch_plan),
    # so nothing written with the new key can outlive the key:
    #   1. store FERNET_NEXT, or keep the one a failed or interrupted rotation left;
    #   2. restart the components with "new,old";
    #   3. `airflow rotate-fernet-key` re-encrypts connections, variables and triggers with "new";
    #   4. in one transaction: "new" becomes fernet_key, FERNET_NEXT goes, FERNET_STORED is recorded;
    #   5. restart the components with "new" alone.
    # A failure before 4 leaves the old key stored as fernet_key and the environment running on
    # "new,old" (UPDATE_FAILED names the error); rotating again finishes with the same new key.

    def _rotate_fernet(self, work: Work, revision: int) -> None:
        self.ctx.backend.watch(work.env_id, False)
        with self.ctx.store.session() as session:
            operation = session.get_one(OperationRow, work.operation_id)
            stored = any(step.get("step") == FERNET_STORED for step in operation.steps)
            pending = FERNET_NEXT in repository.get_secrets(session, self.ctx.envelope, env_id=work.env_id)
            if not stored and not pending:
                repository.put_secret(session, self.ctx.envelope, env_id=work.env_id, name=FERNET_NEXT,
                                      value=Fernet.generate_key().decode())
        target = self._prepare(work, revision)
        if not stored:
            self._step(work, "restarting components with the new and the old fernet key")
            self._wait_ready(work, self._relaunch(work, target))
            self._step(work, "re-encrypting connections, variables and triggers with the new fernet key")
            _rotate_fernet_key(self.launch_plan(target))
            with self.ctx.store.session() as session:
                new = repository.get_secrets(session, self.ctx.envelope, env_id=work.env_id)[FERNET_NEXT]
                repository.put_secret(session, self.ctx.envelope, env_id=work.env_id, name="fernet_key", value=new)
                repository.delete_secret(session, env_id=work.env_id, name=FERNET_NEXT)
                operation = session.get_one(OperationRow, work.operation_id)
                operation.steps = [*operation.steps, {"step": FERNET_STORED, "at": utcnow().isoformat()}]
        self._step(work, "restarting components with the new fernet key alone")
        self._wait_ready(work, self._relaunch(work, target))
        self._finish(work, revision, Status.AVAILABLE, "fernet key rotated")

    def _relaunch(self, work: Work, target: Target) -> EnvironmentProcesses:
        """_launch, restarting every component whose environment is not this plan's.

        A control plane that has not launched the environment itself (it restarted) would
        adopt processes started with an unknown fernet key, so those are stopped first."""
        if self.ctx.backend.get(work.env_id) is None:
            self.ctx.backend.stop_environment(work.env_id, target.layout.root)
        return self._launch(work, target)

    def resume(self, env_id: str, revision: int) -> EnvironmentProcesses:
        """At start-up: run `revision` again, adopting the processes that still run."""
        target = self._prepare(Work(env_id=env_id, operation_id=None), revision)
        return self.ctx.backend.launch(self.launch_plan(target), adopt=True)

    # --- steps ---

    def _layout(self, env_id: str) -> airflow_config.EnvironmentLayout:
        return airflow_config.EnvironmentLayout(root=self.ctx.settings.environments_dir / env_id)

    def _prepare(self, work: Work, revision: int) -> Target:
        settings = self.ctx.settings
        with self.ctx.store.session() as session:
            env = repository.get_by_id(session, work.env_id)
            spec = repository.get_spec(session, env.id, revision)
            name, database = env.name, env.database_name
            if not env.ports:
                env.ports = ports.allocate(
                    PORT_NAMES, start=settings.env_port_start, end=settings.env_port_end, taken=repository.used_ports(session)
                )
            env_ports = dict(env.ports)
            external = repository.get_secrets(session, self.ctx.envelope, env_id=env.id).get("metadata_db_url")

        layout = self._layout(work.env_id)
        layout.create()
        if spec.source is not None:
            spec = self._from_bucket(work, spec, layout)
        runtime = ensure_runtime(
            root=settings.runtimes_dir, python=settings.runtime_python, airflow_version=spec.airflow_version,
            requirements=spec.requirements, progress=_Throttled(lambda text: self._progress(work, text)),
        )
        self._step(work, f"runtime {runtime.key} ready")
        if external:
            self._step(work, "migrating the external metadata database")
            metadb.migrate(runtime=runtime, url=external)
            db_url = external
        else:
            assert database is not None
            template = f"hangar_tpl_{runtime.key}"
            self.ctx.postgres.ensure_template(template, runtime=runtime, progress=lambda t: self._progress(work, t))
            self.ctx.postgres.create_from_template(database, template=template)
            db_url = self.ctx.postgres.url(database)
            self._step(work, f"metadata database {database} ready")
        airflow_config.write_cfg(spec=spec, layout=layout, ports=env_ports)
        return Target(env_id=work.env_id, name=name, revision=revision, spec=spec, runtime=runtime, layout=layout,
                      ports=env_ports, db_url=db_url)

    def _from_bucket(self, work: Work, spec: Spec, layout: airflow_config.EnvironmentLayout) -> Spec:
        """The spec as it runs: DAGs mirrored from the bucket, requirements and plugins at their pinned versions."""
        source = spec.source
        assert source is not None
        result = buckets.materialize_prefix(self.ctx, bucket=source.bucket, prefix=source.dag_s3_path,
                                            target_dir=layout.dags)
        self._step(work, f"DAGs synced from s3://{source.bucket}/{source.dag_s3_path}: {result}")
        changes: dict = {"dags": str(layout.dags)}
        if source.requirements_s3_path:
            changes["requirements"] = buckets.get_object(
                self.ctx, bucket=source.bucket, key=source.requirements_s3_path,
                version_id=source.requirements_s3_object_version).data.decode()
        if source.plugins_s3_path:
            archive = buckets.get_object(self.ctx, bucket=source.bucket, key=source.plugins_s3_path,
                                         version_id=source.plugins_s3_object_version).data
            plugins.unpack_zip(archive, layout.plugins)
        return spec.model_copy(update=changes)

    def launch_plan(self, target: Target) -> LaunchPlan:
        with self.ctx.store.session() as session:
            secrets = repository.get_secrets(session, self.ctx.envelope, env_id=target.env_id)
        if FERNET_NEXT in secrets:  # a fernet rotation is under way: MultiFernet, the new key first
            secrets["fernet_key"] = f"{secrets[FERNET_NEXT]},{secrets['fernet_key']}"
        env = airflow_config.process_env(
            spec=target.spec, layout=target.layout, runtime_bin=target.runtime.path / "bin", secrets=secrets,
            db_url=target.db_url,
        )
        major = parse_version(target.spec.airflow_version)[0]
        return LaunchPlan(
            env_id=target.env_id, major=major, airflow_bin=target.runtime.airflow,
            env=env, root=target.layout.root, web_port=target.ports["web"],
            start_seconds=self.ctx.settings.start_seconds, start_retries=self.ctx.settings.start_retries,
            stable_seconds=self.ctx.settings.stable_seconds,
            component_env={c.name: airflow_config.component_env(target.spec, c.name) for c in components_for(major)},
            config_hash=hashlib.sha256(target.layout.cfg.read_bytes()).hexdigest(),
        )

    def _launch(self, work: Work, target: Target) -> EnvironmentProcesses:
        self._step(work, "starting components")
        return self.ctx.backend.launch(self.launch_plan(target), adopt=True)

    def _wait_ready(self, work: Work, processes: EnvironmentProcesses) -> None:
        deadline = time.monotonic() + self.ctx.settings.ready_timeout
        while True:
            health = processes.health()
            # a component that crashed during start must prove stable (or go FATAL) first
            if health.healthy and not health.flapping:
                return
            if health.fatal:
                raise ComponentFailed(f"{health.reason}\n{_log_tail(processes)}")
            if time.monotonic() > deadline:
                raise ComponentFailed(
                    f"not healthy after {self.ctx.settings.ready_timeout:.0f} s: {health.reason}\n{_log_tail(processes)}"
                )
            waiting = health.reason or f"waiting for {', '.join(health.flapping)} to prove stable after a crash"
            self._progress(work, waiting)
            time.sleep(0.25)

    def _finish(self, work: Work, revision: int, status: Status, reason: str) -> None:
        with self.ctx.store.session() as session:
            env = repository.get_by_id(session, work.env_id)
            operation = session.get_one(OperationRow, work.operation_id)
            operation.done = True
            operation.steps = [*operation.steps, {"step": "done", "at": utcnow().isoformat()}]
            if status == Status.AVAILABLE:
                env.running_revision = env.last_good_revision = revision
            change_status(session, env, status, reason=reason)
        if status == Status.AVAILABLE:
            self.ctx.backend.watch(work.env_id)

    def _step(self, work: Work, text: str) -> None:
        if work.operation_id is None:  # adopting at start-up: no operation to report to
            return
        with self.ctx.store.session() as session:
            operation = session.get_one(OperationRow, work.operation_id)
            operation.steps = [*operation.steps, {"step": text, "at": utcnow().isoformat()}]
            repository.get_by_id(session, work.env_id).status_reason = text

    def _progress(self, work: Work, text: str) -> None:
        if work.operation_id is None:
            return
        with self.ctx.store.session() as session:
            repository.get_by_id(session, work.env_id).status_reason = text[:500]


FERNET_NEXT = "fernet_key_next"  # the secret holding the new fernet key while a rotation is under way
FERNET_STORED = "new fernet key stored"  # the step after which only the final restart is left
_SECRET_VARS = ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY",
                "AIRFLOW__WEBSERVER__SECRET_KEY", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")


class FernetRotationFailed(PermanentError):
    code = "FERNET_ROTATION_FAILED"


def _rotate_fernet_key(plan: LaunchPlan, timeout: float = 600) -> None:
    """`airflow rotate-fernet-key` in the environment the components get (process_env), so it
    reads the same airflow.cfg, database and "new,old" fernet keys."""
    try:
        result = subprocess.run([str(plan.airflow_bin), "rotate-fernet-key"], env=plan.env, cwd=plan.root,
                                capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FernetRotationFailed(f"`airflow rotate-fernet-key` did not finish in {timeout:.0f} s") from None
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        for var in _SECRET_VARS:  # an error may quote the configuration it could not use
            value = plan.env.get(var, "")
            for part in filter(None, [value, *value.split(",")]):
                tail = tail.replace(part, "***")
        raise FernetRotationFailed(f"`airflow rotate-fernet-key` failed (exit {result.returncode}):\n{tail}")


class _Throttled:
    """Passes on at most a few progress lines a second; the last one always wins."""

    def __init__(self, sink, interval: float = 0.3) -> None:
        self.sink, self.interval, self._last = sink, interval, 0.0
        self._lock = threading.Lock()

    def __call__(self, text: str) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._last >= self.interval:
                self._last = now
                self.sink(text)


def _log_tail(processes: EnvironmentProcesses, lines: int = 12) -> str:
    parts = []
    for name, process in processes.processes.items():
        if process.reason:
            path: Path = process.spec.log_file
            try:
                tail = path.read_text(errors="replace").splitlines()[-lines:]
            except FileNotFoundError:
                tail = []
            parts.append(f"--- last lines of {name} log ---\n" + "\n".join(tail))
    return "\n".join(parts)
