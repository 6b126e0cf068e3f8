"""The control plane: wires store, keys, PostgreSQL, backend and reconciler, and
recovers after a restart.

Recovery rule: nothing the previous control plane decided is lost. Environments
that should be running are adopted (their processes kept, missing ones
restarted); operations that were not finished are handed to the reconciler
again, whose steps are idempotent.
"""
from __future__ import annotations

import logging
import threading
import time

from hangar.backend.environment_processes import Health
from hangar.backend.local import LocalBackend
from hangar.context import Context
from hangar.crypto import Envelope, load_or_create_master_key
from hangar.domain import keys
from hangar.domain.metrics import hangar_families
from hangar.domain.lifecycle import change_status, resumable_operations
from hangar.domain.status import Status
from hangar.logstore.handler import EnvironmentLogHandler
from hangar.logstore.store import LogStore
from hangar.reconciler.loops import (
    alert_delivery, alerting, autoscaler, dag_sync, git_sync, log_shipping, maintenance, metric_sampling, snapshot_schedule,
)
from hangar.reconciler.reconciler import Reconciler
from hangar.reconciler.queue import ReconcileQueues, Work
from hangar.runtime.embedded_postgres import EmbeddedPostgres
from hangar.runtime import venvs
from hangar.settings import Settings
from hangar.store import repository
from hangar.store.db import open_store
from hangar.store.models import EnvironmentRow
from hangar.telemetry.registry import Telemetry
from hangar.telemetry.statsd import StatsdReceiver

log = logging.getLogger(__name__)
NAMES_SECONDS = 10.0


class ControlPlane:
    def __init__(self, settings: Settings) -> None:
        settings.ensure_dirs()
        if settings.isolated:  # environments' users run their runtime's interpreter
            settings.runtime_python = venvs.python_for_everyone(settings.runtime_python)
        self.settings = settings
        self.backend = LocalBackend(interval=settings.monitor_interval, on_health=self._on_health)
        self.ctx = Context(
            settings=settings,
            store=open_store(settings.state_dir / "hangar.db"),
            envelope=Envelope(load_or_create_master_key(settings.master_key_file)),
            postgres=EmbeddedPostgres(settings.pgdata_dir, isolate=settings.isolated),
            backend=self.backend,
            logs=LogStore.from_settings(settings),
            submit=self._submit,
            telemetry=Telemetry(names=self._environment_name),
        )
        self.ctx.telemetry.add_source(lambda: hangar_families(self.ctx))
        self._names: dict[str, tuple[float, str | None]] = {}
        self._statsd: StatsdReceiver | None = None
        self._log_handler = EnvironmentLogHandler(
            self.ctx.logs, knows=lambda env_id: (settings.environments_dir / env_id).is_dir())
        self.reconciler = Reconciler(self.ctx)
        self._closing = threading.Event()
        self.queues = ReconcileQueues(handler=self.reconciler.handle, on_failure=self.reconciler.fail)

    def _submit(self, env_id: str, operation_id: int) -> None:
        self.queues.submit(Work(env_id=env_id, operation_id=operation_id))

    def start(self) -> None:
        self.ctx.postgres.start()
        keys.ensure_default_key(self.ctx)  # the Hangar-managed KMS key exists from the first start
        self._recover()
        hangar_log = logging.getLogger("hangar")
        hangar_log.addHandler(self._log_handler)
        if hangar_log.getEffectiveLevel() > logging.INFO:  # the environments' logs take INFO and above
            hangar_log.setLevel(logging.INFO)
        self.backend.start_monitor()
        self._listen_for_statsd()
        for name, loop in (("log-shipping", log_shipping.loop), ("metric-sampling", metric_sampling.loop),
                           ("alerting", alerting.loop), ("alert-delivery", alert_delivery.loop),
                           ("dag-sync", dag_sync.loop), ("git-sync", git_sync.loop),
                           ("snapshot-schedule", snapshot_schedule.loop),
                           ("maintenance", maintenance.loop), ("autoscaler", autoscaler.loop)):
            threading.Thread(target=loop, args=(self.ctx,), kwargs={"stop": self._closing},
                             name=f"hangar-{name}", daemon=True).start()

    def close(self) -> None:
        """Stop the control plane only; environments keep running."""
        self._closing.set()
        logging.getLogger("hangar").removeHandler(self._log_handler)
        if self._statsd is not None:
            self._statsd.close()
        self.queues.close()
        self.backend.close()

    def _listen_for_statsd(self) -> None:
        """Airflow's metrics of every environment; without them (the port is taken) Hangar runs on."""
        if not self.settings.statsd_port:
            return
        try:
            self._statsd = StatsdReceiver(host=self.settings.statsd_host, port=self.settings.statsd_port,
                                          sink=self.ctx.telemetry.airflow.take)
        except OSError as exc:
            log.error("cannot receive Airflow's metrics on UDP %s:%s: %s", self.settings.statsd_host,
                      self.settings.statsd_port, exc)
            return
        self._statsd.start()

    def _environment_name(self, env_id: str) -> str | None:
        """A live environment's name by id, for metrics: looked up in the store at most every
        NAMES_SECONDS per id (an id nobody knows included), however many packets name it."""
        now = time.monotonic()
        cached = self._names.get(env_id)
        if cached is None or now - cached[0] > NAMES_SECONDS:
            with self.ctx.store.session() as session:
                env = session.get(EnvironmentRow, env_id)
                cached = (now, env.name if env is not None and env.status != Status.DELETED else None)
            self._names[env_id] = cached
        return cached[1]

    def _recover(self) -> None:
        with self.ctx.store.session() as session:
            pending = dict(resumable_operations(session))
            running = [
                (env.id, env.running_revision) for env in repository.list_live(session)
                if env.id not in pending and env.running_revision is not None
                and env.status in (Status.AVAILABLE, Status.UNAVAILABLE, Status.UPDATE_FAILED)
            ]
        for env_id, revision in running:
            try:
                processes = self.reconciler.resume(env_id, revision)
                adopted = [n for n, p in processes.processes.items() if p.state.value == "RUNNING"]
                log.info("environment %s: adopted %s", env_id, ", ".join(adopted) or "nothing")
                self.backend.watch(env_id)
            except Exception:
                log.exception("could not resume environment %s", env_id)
        for env_id, operation_id in pending.items():
            self._submit(env_id, operation_id)

    def _on_health(self, env_id: str, health: Health) -> None:
        with self.ctx.store.session() as session:
            env = repository.get_by_id(session, env_id)
            status = Status(env.status)
            if health.healthy and status == Status.UNAVAILABLE:
                change_status(session, env, Status.AVAILABLE, reason="all components healthy again")
            elif not health.healthy and not health.reason.startswith("starting") and status in (
                Status.AVAILABLE, Status.UPDATE_FAILED
            ):
                change_status(session, env, Status.UNAVAILABLE, reason=health.reason)
            elif status == Status.UNAVAILABLE and not health.healthy and env.status_reason != health.reason:
                env.status_reason = health.reason
