"""The reconciler: runs each operation the queues hand it, and records how a failed one ended.

`handle` looks the operation's kind up in the registry (hangar.reconciler.registry) and
runs it on its own Steps. `fail` records the failure once, redacted, as the operation's
last step, lets the operation's failure rule set the status, and then stops or watches
the processes as the rule says.
"""
from __future__ import annotations

import logging
import time

from hangar.backend.environment_processes import EnvironmentProcesses
from hangar.context import Context
from hangar.domain.redaction import redact_failure
from hangar.errors import HangarError, TemporaryError
from hangar.reconciler import launching
from hangar.reconciler.operation import AfterFailure, Failure
from hangar.reconciler.queue import Work
from hangar.reconciler.registry import operation_for
from hangar.reconciler.steps import Steps
from hangar.schemas.operations import Outcome, StepRecord
from hangar.store import repository
from hangar.store.models import OperationRow

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def handle(self, work: Work) -> None:
        with self.ctx.store.session() as session:
            operation = session.get_one(OperationRow, work.operation_id)
            if operation.done:
                return
            operation.attempts += 1
            kind, revision = operation.kind, operation.revision
        started, outcome = time.monotonic(), "failed"
        try:
            operation_for(kind).run(Steps(self.ctx, work), revision)
            outcome = "succeeded"
        except TemporaryError:
            outcome = "retried"
            raise
        finally:
            self.ctx.telemetry.reconcile_duration.labels(str(kind), outcome).observe(time.monotonic() - started)

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
            repository.append_step(operation, StepRecord(step="failed", error=message, outcome=Outcome.FAILED))
            rule = operation_for(operation.kind)
            rule.on_failure(Failure(session=session, env=env, operation=operation, code=code, message=message))
        if rule.after == AfterFailure.STOP:
            self.ctx.backend.stop_environment(work.env_id)
        elif rule.after == AfterFailure.WATCH:
            self.ctx.backend.watch(work.env_id)

    def resume(self, env_id: str, revision: int) -> EnvironmentProcesses:
        """At start-up: run `revision` again, adopting the processes that still run."""
        return launching.resume(self.ctx, env_id, revision)
