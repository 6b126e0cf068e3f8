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
from secrets import token_urlsafe

from cryptography.fernet import Fernet

from hangar.backend import confinement, identity
from hangar.backend.identity import RunAs
from hangar.backend.local import EnvironmentProcesses, LaunchPlan
from hangar.context import Context
from hangar.domain.environments import ROTATE_FERNET
from hangar.domain.lifecycle import change_status
from hangar.domain.limits import environment_limits
from hangar.domain.redaction import redact_failure
from hangar.schemas.spec import Executor, Spec
from hangar.schemas.versions import parse_version
from hangar.domain.status import Status
from hangar.errors import CeleryBrokerNotConfigured, ComponentFailed, FolderUnreadable, HangarError, OperationSuperseded, PermanentError
from hangar.backend.components import WorkerPlan
from hangar.domain.changes import roles
from hangar.reconciler.port_claims import claim_ports
from hangar.reconciler.queue import Work
from hangar.reconciler import snapshots as snapshot_work
from hangar.reconciler import maintenance as maintenance_work
from hangar.buckets import store as buckets
from hangar.domain.changes import ChangeKind, plan_change
from hangar.runtime import airflow_config, broker, metadb, plugins, preflight, startup, upgrade
from hangar.runtime.venvs import Runtime, builder_for, ensure_runtime
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
    dags: str  # the folder the DAGs link points at
    plugins_dir: Path  # this revision's plugins folder (hangar.runtime.plugins.stage)
    startup_script: Path | None
    cfg_text: str  # airflow.cfg as this revision renders it; written when the revision goes live
    run_as: RunAs | None = None  # the environment's own system user (isolation), else None


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
         ROTATE_FERNET: self._rotate_fernet, **snapshot_work.handlers(self),
         **maintenance_work.handlers(self)}[kind](work, revision)

    def fail(self, work: Work, exc: Exception) -> None:
        code = getattr(exc, "code", "INTERNAL_ERROR")
        message = exc.message if isinstance(exc, HangarError) else f"{type(exc).__name__}: {exc}"
        message = redact_failure(self.ctx, env_id=work.env_id, text=message)
        if not isinstance(exc, HangarError):
            log.exception("operation %s failed unexpectedly", work.operation_id, exc_info=exc)
        with self.ctx.store.session() as session:
            operation = session.get_one(OperationRow, work.operation_id)
            if operation.done:  # closed by a delete meanwhile (OperationSuperseded): nothing to record
                return
            env = repository.get_by_id(session, work.env_id)
            operation.done = True
            operation.steps = [*operation.steps, {"step": "failed", "at": utcnow().isoformat(), "error": message}]
            if operation.kind in ("create", snapshot_work.CLONE):
                change_status(session, env, Status.CREATE_FAILED, reason=message, error_code=code, error_message=message)
            elif operation.kind == "update" and env.running_revision is not None and env.status != Status.ROLLING_BACK:
                # nothing switched (pre-flight) or the switch was rolled back: the old revision serves on
                change_status(session, env, Status.AVAILABLE, error_code=code, error_message=message,
                              reason=f"update to revision {operation.revision} failed; revision "
                                     f"{env.running_revision} keeps running: {message}")
            elif operation.kind in ("update", ROTATE_FERNET, snapshot_work.RESTORE):
                change_status(session, env, Status.UPDATE_FAILED, reason=message, error_code=code, error_message=message)
            elif operation.kind == snapshot_work.SNAPSHOT and env.status == Status.CREATING_SNAPSHOT:
                # the environment kept running: back to AVAILABLE, the error kept in the event's reason
                change_status(session, env, Status.AVAILABLE, reason=f"snapshot failed: {message}")
            elif operation.kind == snapshot_work.SNAPSHOT:
                env.status_reason = f"snapshot failed: {message}"
            elif operation.kind == maintenance_work.MAINTENANCE:
                maintenance_work.failed(session, env, operation, code=code, message=message)
            else:
                env.status_reason = f"delete failed, will retry on the next delete: {message}"
        if operation.kind in ("create", snapshot_work.CLONE):
            self.ctx.backend.stop_environment(work.env_id)
        elif operation.kind in ("update", ROTATE_FERNET, snapshot_work.RESTORE, maintenance_work.MAINTENANCE):
            self.ctx.backend.watch(work.env_id)

    # --- operations ---

    def _create(self, work: Work, revision: int) -> None:
        self.ctx.backend.watch(work.env_id, False)
        target = self._prepare(work, revision)
        self._check_broker(work, target)
        processes = self._launch(work, target)
        self._wait_ready(work, processes)
        self._finish(work, revision, Status.AVAILABLE, f"revision {revision} is running")

    def _update(self, work: Work, revision: int) -> None:
        """Apply `revision` by the least disruptive path (hangar.domain.changes)."""
        self.ctx.backend.watch(work.env_id, False)
        with self.ctx.store.session() as session:
            env = repository.get_by_id(session, work.env_id)
            previous = env.running_revision
            old_spec = repository.get_spec(session, env.id, previous) if previous else None
            new_spec = repository.get_spec(session, env.id, revision)
        if previous is None or old_spec is None:  # it never ran: start it as a create would
            target = self._prepare(work, revision)
            self._wait_ready(work, self._launch(work, target))
            self._finish(work, revision, Status.AVAILABLE, f"revision {revision} is running")
            return
        plan = plan_change(old_spec, new_spec, root=self._layout(work.env_id).root,
                           from_revision=previous, to_revision=revision)
        self._step(work, f"change plan ({plan.kind}): " + "; ".join(plan.steps))
        old = self._stage(work, previous)
        target = self._stage(work, revision)
        if plan.kind in (ChangeKind.RUNTIME, ChangeKind.UPGRADE):
            self._preflight(work, target, old)
        if plan.kind == ChangeKind.UPGRADE:
            if not self._upgrade(work, target, old):
                return
        else:
            try:
                self._wait_ready(work, self._go_live(work, target))
            except ComponentFailed as exc:
                self._roll_back(work, old, exc)
                return
        self._finish(work, revision, Status.AVAILABLE, f"revision {revision} is running ({plan.kind} change)")

    def _check_broker(self, work: Work, target: Target) -> None:
        """A Celery revision starts only when its broker answers (checked again here: the broker
        may have gone away since the request was accepted)."""
        if target.spec.executor != Executor.celery:
            return
        url = self.ctx.settings.celery_broker_url
        if not url:
            raise CeleryBrokerNotConfigured()
        self._step(work, "checking the Celery broker")
        broker.check_reachable(url)

    def _preflight(self, work: Work, target: Target, old: Target) -> None:
        """Check the new runtime before anything switches; a failure leaves the old revision serving."""
        self._check_broker(work, target)
        env = self._preflight_env(target)
        timeout = self.ctx.settings.startup_timeout
        if target.spec.requirements and target.runtime.key != old.runtime.key:
            self._step(work, "pre-flight: importing the requirements in the new runtime")
            preflight.check_imports(runtime=target.runtime, requirements=target.spec.requirements, env=env,
                                    run_as=target.run_as)
        if target.plugins_dir != old.plugins_dir or target.runtime.key != old.runtime.key:
            self._step(work, "pre-flight: importing the plugins in the new runtime")
            preflight.check_plugins(runtime=target.runtime, plugins_dir=target.plugins_dir, env=env, run_as=target.run_as)
        if target.spec.startup_script:
            self._step(work, "pre-flight: running the startup script in a sandbox")
            result = preflight.check_startup_script(script=target.spec.startup_script, env=env, timeout=timeout,
                                                    run_as=target.run_as)
            for warning in getattr(result, "warnings", []):
                self._step(work, f"pre-flight: {warning}")
        if target.runtime.key != old.runtime.key:
            self._step(work, "pre-flight: parsing the DAGs with the new runtime")
            new_errors = preflight.parse_dags(runtime=target.runtime, dags_dir=Path(target.dags), env=env,
                                              run_as=target.run_as)
            if new_errors:
                old_errors = preflight.parse_dags(runtime=old.runtime, dags_dir=Path(old.dags), env=self._preflight_env(old),
                                                  run_as=old.run_as)
                broken = preflight.new_dag_errors(old_errors, new_errors)
                if broken:
                    raise preflight.DagImportErrors(broken)
        self._step(work, "pre-flight passed")

    def _preflight_env(self, target: Target) -> dict[str, str]:
        """The components' environment, reading the revision's configuration from a side file."""
        env = dict(self.launch_plan(target).env)
        side = target.layout.root / f"airflow.r{target.revision}.cfg"
        airflow_config.write_cfg_file(side, target.cfg_text)
        identity.give(side, target.run_as)
        env["AIRFLOW_CONFIG"] = str(side)
        return env

    def _upgrade(self, work: Work, target: Target, old: Target) -> bool:
        """Drain and stop, snapshot the metadata database, migrate, start on the new runtime.
        Any failure after the stop restores the snapshot and brings the old revision back."""
        from hangar.domain import snapshots  # the snapshot store sits beside the reconciler

        processes = self.ctx.backend.get(work.env_id)
        self._step(work, "draining the scheduler and stopping the components")
        if processes is not None:
            processes.stop(drain=True)
        self.ctx.backend.stop_environment(work.env_id, target.layout.root)
        self._status(work, Status.CREATING_SNAPSHOT, f"snapshotting the metadata database before Airflow {target.spec.airflow_version}")
        try:
            snapshot_id = snapshots.take_snapshot(self.ctx, env_id=work.env_id, revision=old.revision, kind="pre-upgrade")
        except Exception:
            self._status(work, Status.UPDATING, "the snapshot failed; starting the previous revision again")
            self._wait_ready(work, self._go_live(work, old))
            raise
        self._status(work, Status.UPDATING, f"snapshot {snapshot_id} taken; migrating the metadata database")
        try:
            path = upgrade.plan_upgrade(current=old.spec.airflow_version, target=target.spec.airflow_version,
                                        allow_downgrade=True)
            if path.kind == "downgrade":
                upgrade.downgrade(old=target.runtime, new=old.runtime, url=target.db_url, progress=self._progress_of(work),
                                  run_as=target.run_as)
            else:
                upgrade.migrate(old=old.runtime, new=target.runtime, url=target.db_url, progress=self._progress_of(work),
                                run_as=target.run_as)
            self._wait_ready(work, self._go_live(work, target))
        except HangarError as exc:
            self.ctx.backend.stop_environment(work.env_id, target.layout.root)
            self._set_rolling_back(work, old.revision, exc)
            self._step(work, f"restoring the metadata database from snapshot {snapshot_id}")
            snapshots.restore_database(self.ctx, env_id=work.env_id, snapshot_id=snapshot_id)
            self._wait_ready(work, self._go_live(work, old))
            self._rolled_back(work, old.revision)
            return False
        return True

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
            self.ctx.postgres.drop_role(database)
        self._step(work, "removing files")
        shutil.rmtree(root, ignore_errors=True)
        confinement.remove(work.env_id)
        identity.remove_user(work.env_id)
        self._finish(work, revision, Status.DELETED, "deleted")

    def _roll_back(self, work: Work, old: Target, exc: HangarError) -> None:
        """The switch began and a component did not come up: the last good revision returns,
        through the same one-at-a-time replacement."""
        self._set_rolling_back(work, old.revision, exc)
        self._wait_ready(work, self._go_live(work, old))
        self._rolled_back(work, old.revision)

    def _set_rolling_back(self, work: Work, previous: int, exc: HangarError) -> None:
        message = redact_failure(self.ctx, env_id=work.env_id, text=exc.message)
        with self.ctx.store.session() as session:
            env = repository.get_by_id(session, work.env_id)
            change_status(session, env, Status.ROLLING_BACK, reason=f"rolling back to revision {previous}: {message}",
                          error_code=exc.code, error_message=message)

    def _rolled_back(self, work: Work, previous: int) -> None:
        with self.ctx.store.session() as session:
            env = repository.get_by_id(session, work.env_id)
            env.running_revision = previous
            change_status(session, env, Status.AVAILABLE, reason=f"rolled back to revision {previous}")
            operation = session.get_one(OperationRow, work.operation_id)
            operation.done = True
            operation.steps = [*operation.steps, {"step": "rolled back", "at": utcnow().isoformat()}]
        self.ctx.backend.watch(work.env_id)

    def _status(self, work: Work, status: Status, reason: str) -> None:
        with self.ctx.store.session() as session:
            change_status(session, repository.get_by_id(session, work.env_id), status, reason=reason)

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
        processes, _ = self.ctx.backend.launch(self.launch_plan(target), adopt=True)
        return processes

    # --- steps ---

    def _db_password(self, env_id: str) -> str:
        """The password of the environment's database role; made now for one created before roles."""
        with self.ctx.store.session() as session:
            password = repository.get_secrets(session, self.ctx.envelope, env_id=env_id).get("db_password")
            if password is None:
                password = token_urlsafe(32)
                repository.put_secret(session, self.ctx.envelope, env_id=env_id, name="db_password", value=password)
        return password

    def _layout(self, env_id: str) -> airflow_config.EnvironmentLayout:
        return airflow_config.EnvironmentLayout(root=self.ctx.settings.environments_dir / env_id)

    def _prepare(self, work: Work, revision: int) -> Target:
        """_stage, and make its files the live ones (for a revision that is about to run)."""
        target = self._stage(work, revision)
        self._activate(target)
        return target

    def _stage(self, work: Work, revision: int) -> Target:
        """Everything `revision` needs, built next to what runs: runtime, metadata database,
        plugins folder, startup script and configuration text. Nothing running changes."""
        settings = self.ctx.settings
        env_ports = claim_ports(self.ctx.store, work.env_id, start=settings.env_port_start, end=settings.env_port_end)
        with self.ctx.store.session() as session:
            env = repository.get_by_id(session, work.env_id)
            spec = repository.get_spec(session, env.id, revision)
            name, database, epoch = env.name, env.database_name, env.runtime_epoch
            external = repository.get_secrets(session, self.ctx.envelope, env_id=env.id).get("metadata_db_url")

        layout = self._layout(work.env_id)
        layout.create()
        run_as = None
        if settings.isolated:
            tasks, memory = environment_limits(spec, max_processes=settings.environment_max_processes,
                                               memory_mib=settings.environment_memory_mib)
            run_as = identity.ensure_user(work.env_id).confined(work.env_id, confinement.Limits(tasks, memory))
        plugin_archive = None
        if spec.source is not None:
            spec, plugin_archive = self._from_bucket(work, spec, layout)
        runtime = ensure_runtime(
            root=settings.runtimes_dir, python=settings.runtime_python, airflow_version=spec.airflow_version,
            requirements=spec.requirements, progress=_Throttled(lambda text: self._progress(work, text)), epoch=epoch,
            celery=spec.executor == Executor.celery, builder=builder_for(settings.isolated),
        )
        self._step(work, f"runtime {runtime.key} ready")
        if external:
            db_url = external
        else:
            assert database is not None
            if self.ctx.postgres.database_state(database) is None:  # an update's database exists already
                template = f"hangar_tpl_{runtime.key}"
                self.ctx.postgres.ensure_template(template, runtime=runtime, progress=lambda t: self._progress(work, t))
                self.ctx.postgres.create_from_template(database, template=template)
            if run_as is not None:  # reached as its own role, over loopback TCP
                password = self._db_password(work.env_id)
                self.ctx.postgres.ensure_role(database, password=password)
                db_url = self.ctx.postgres.role_url(database, password=password)
            else:
                db_url = self.ctx.postgres.url(database)
            self._step(work, f"metadata database {database} ready")
        if run_as is not None and spec.plugins and not identity.can_read(Path(spec.plugins), run_as):
            # copied by the control plane, which reads what the environment may not
            raise FolderUnreadable("plugins folder", spec.plugins, run_as.name, run_as.uid)
        plugins_dir = plugins.stage(layout.root / "plugins", source=Path(spec.plugins) if spec.plugins else None,
                                    archive=plugin_archive)
        script = None
        if spec.startup_script:
            digest = hashlib.sha256(spec.startup_script.encode()).hexdigest()[:16]
            script = layout.root / "startup" / f"{digest}.sh"
            script.parent.mkdir(parents=True, exist_ok=True)
            script.write_text(spec.startup_script)
        assert spec.dags is not None
        if run_as is not None:
            identity.hand_over(layout.root, run_as)
            if not identity.can_read(Path(spec.dags), run_as):
                raise FolderUnreadable("DAGs folder", spec.dags, run_as.name, run_as.uid)
        return Target(env_id=work.env_id, name=name, revision=revision, spec=spec, runtime=runtime, layout=layout,
                      ports=env_ports, db_url=db_url, dags=spec.dags, plugins_dir=plugins_dir, startup_script=script,
                      run_as=run_as,
                      cfg_text=airflow_config.render_cfg(spec=spec, layout=layout, ports=env_ports, plugins_dir=plugins_dir,
                                                         drain_seconds=settings.drain_seconds,
                                                         broker_url=settings.celery_broker_url))

    def _activate(self, target: Target) -> None:
        """The revision's configuration and DAGs become the ones Airflow reads. Components
        that read nothing that changed go on; the rest are replaced by _launch."""
        if target.spec.external_metadata_db:
            metadb.migrate(runtime=target.runtime, url=target.db_url, run_as=target.run_as)
        airflow_config.write_cfg_text(target.layout, target.cfg_text)
        target.layout.point_dags_at(target.dags)
        if target.run_as is not None:
            identity.hand_over(target.layout.root, target.run_as)

    def _go_live(self, work: Work, target: Target) -> EnvironmentProcesses:
        self._activate(target)
        return self._launch(work, target)

    def _from_bucket(self, work: Work, spec: Spec, layout: airflow_config.EnvironmentLayout) -> tuple[Spec, bytes | None]:
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
        if source.startup_script_s3_path:
            changes["startup_script"] = buckets.get_object(
                self.ctx, bucket=source.bucket, key=source.startup_script_s3_path,
                version_id=source.startup_script_s3_object_version).data.decode(errors="replace")
        archive = None
        if source.plugins_s3_path:
            archive = buckets.get_object(self.ctx, bucket=source.bucket, key=source.plugins_s3_path,
                                         version_id=source.plugins_s3_object_version).data
        return spec.model_copy(update=changes), archive

    def launch_plan(self, target: Target) -> LaunchPlan:
        with self.ctx.store.session() as session:
            secrets = repository.get_secrets(session, self.ctx.envelope, env_id=target.env_id)
        if FERNET_NEXT in secrets:  # a fernet rotation is under way: MultiFernet, the new key first
            secrets["fernet_key"] = f"{secrets[FERNET_NEXT]},{secrets['fernet_key']}"
        env = airflow_config.process_env(
            spec=target.spec, layout=target.layout, runtime_bin=target.runtime.path / "bin", secrets=secrets,
            db_url=target.db_url, broker_url=self.ctx.settings.celery_broker_url,
        )
        if target.run_as is not None:
            env.update(target.run_as.env(home=target.layout.root))
        wrapper: list[str] = []
        if target.startup_script is not None:
            env.update(startup.launch_env())
            wrapper = startup.launch_argv(python=target.runtime.python, script=target.startup_script,
                                          timeout=self.ctx.settings.startup_timeout, argv=[])
        major = parse_version(target.spec.airflow_version)[0]
        names = roles(target.spec)
        digests = airflow_config.config_digests(target.cfg_text, names)
        spec = target.spec
        workers = None
        if spec.executor == Executor.celery:
            assert spec.worker_concurrency is not None and spec.max_workers is not None
            workers = WorkerPlan(concurrency=spec.worker_concurrency, queue=airflow_config.celery_queue(target.layout),
                                 hostname_suffix=target.env_id, min_workers=spec.min_workers, max_workers=spec.max_workers)
        return LaunchPlan(
            env_id=target.env_id, major=major, airflow_bin=target.runtime.airflow,
            env=env, root=target.layout.root, web_port=target.ports["web"],
            start_seconds=self.ctx.settings.start_seconds, start_retries=self.ctx.settings.start_retries,
            stable_seconds=self.ctx.settings.stable_seconds, wrapper=wrapper,
            drain_seconds=self.ctx.settings.drain_seconds, schedulers=spec.schedulers or 1, workers=workers,
            worker_drain_seconds=self.ctx.settings.worker_drain_seconds,
            fork=self.ctx.settings.fork_components, fork_ready_timeout=self.ctx.settings.fork_ready_timeout,
            run_as=target.run_as,
            component_env={n: {**airflow_config.component_env(target.spec, n), "HANGAR_CONFIG_DIGEST": digests[n]}
                           for n in names},
        )

    def _launch(self, work: Work, target: Target) -> EnvironmentProcesses:
        """Start what does not run; replace what runs differently, one component at a time,
        each healthy before the next (the scheduler drains, see Component.replace)."""
        self._step(work, "starting components")
        processes, changed = self.ctx.backend.launch(self.launch_plan(target), adopt=True)
        for name in changed:
            draining = processes.components[name].replace == "drain"
            self._step(work, f"replacing {name}" + (" (its running tasks finish first)" if draining else ""))
            processes.replace(name)
            self._wait_ready(work, processes)
            self._wait_job(work, processes, name, target.db_url)
        return processes

    def _wait_job(self, work: Work, processes: EnvironmentProcesses, name: str, db_url: str) -> None:
        """A replaced component counts as up once its Airflow job runs: staying up a few seconds
        is not enough, since an Airflow component may import for longer than that before it
        fails on its configuration."""
        job_type = metadb.COMPONENT_JOBS.get(processes.components[name].role)
        process = processes.processes[name]
        if job_type is None or process.create_time is None:
            return
        deadline = time.monotonic() + self.ctx.settings.ready_timeout
        while not metadb.job_running_since(db_url, job_type=job_type, since=process.create_time - 1):
            health = processes.health()
            if health.fatal or processes.processes[name] is not process or process.failures:
                raise ComponentFailed(f"{name} did not start: {health.reason or process.reason}\n{_log_tail(processes)}")
            if time.monotonic() > deadline:
                raise ComponentFailed(f"{name} started no {job_type} within {self.ctx.settings.ready_timeout:.0f} s\n"
                                      f"{_log_tail(processes)}")
            self._progress(work, f"waiting for {name} to start its {job_type}")
            time.sleep(0.5)

    def _wait_ready(self, work: Work, processes: EnvironmentProcesses) -> None:
        deadline = time.monotonic() + self.ctx.settings.ready_timeout
        while True:
            health = processes.health()
            # a component that crashed during start must prove stable (or go FATAL) first
            if health.healthy and not health.flapping and not health.settling:
                return
            if health.fatal:
                raise ComponentFailed(f"{health.reason}\n{_log_tail(processes)}")
            if time.monotonic() > deadline:
                raise ComponentFailed(
                    f"not healthy after {self.ctx.settings.ready_timeout:.0f} s: {health.reason}\n{_log_tail(processes)}"
                )
            waiting = health.reason or (f"waiting for {', '.join(health.flapping)} to prove stable after a crash"
                                        if health.flapping else f"starting: {', '.join(health.settling)}")
            self._progress(work, waiting, stop_if_closed=True)
            time.sleep(0.25)

    def _finish(self, work: Work, revision: int, status: Status, reason: str) -> None:
        with self.ctx.store.session() as session:
            env = repository.get_by_id(session, work.env_id)
            operation = session.get_one(OperationRow, work.operation_id)
            if operation.done:  # closed by a delete meanwhile: the delete decides what happens now
                return
            operation.done = True
            operation.steps = [*operation.steps, {"step": "done", "at": utcnow().isoformat()}]
            if status == Status.AVAILABLE:
                env.running_revision = env.last_good_revision = revision
            change_status(session, env, status, reason=reason)
        if status == Status.AVAILABLE:
            self.ctx.backend.watch(work.env_id)

    def _step(self, work: Work, text: str) -> None:
        """Record a step; an operation a delete closed meanwhile stops here (OperationSuperseded)."""
        if work.operation_id is None:  # adopting at start-up: no operation to report to
            return
        with self.ctx.store.session() as session:
            operation = session.get_one(OperationRow, work.operation_id)
            _raise_if_closed(operation)
            operation.steps = [*operation.steps, {"step": text, "at": utcnow().isoformat()}]
            repository.get_by_id(session, work.env_id).status_reason = text

    def _progress_of(self, work: Work):
        return _Throttled(lambda text: self._progress(work, text))

    def _progress(self, work: Work, text: str, *, stop_if_closed: bool = False) -> None:
        """Show `text` as the status reason; a closed operation no longer reports, and stops here
        when `stop_if_closed` (not inside a runtime build, which is left to finish)."""
        if work.operation_id is None:
            return
        with self.ctx.store.session() as session:
            operation = session.get_one(OperationRow, work.operation_id)
            if stop_if_closed:
                _raise_if_closed(operation)
            if not operation.done:
                repository.get_by_id(session, work.env_id).status_reason = text[:500]


def _raise_if_closed(operation: OperationRow) -> None:
    if operation.done:
        last = operation.steps[-1]["step"] if operation.steps else "done"
        raise OperationSuperseded(f"operation {operation.id} ({operation.kind}) was closed: {last}")


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
                                capture_output=True, text=True, timeout=timeout,
                                **(plan.run_as.popen() if plan.run_as is not None else {}))
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
