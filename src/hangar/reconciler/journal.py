"""What an operation tells the store as it goes: its steps, its progress, its status and its end.

Every write here is one short transaction. An operation that a delete closed meanwhile
stops at its next step (OperationSuperseded), and its end is not recorded twice.
"""
from __future__ import annotations

import logging
import threading
import time

from hangar.context import Context
from hangar.domain.lifecycle import change_status
from hangar.domain.redaction import redact_failure
from hangar.domain.status import Status
from hangar.errors import HangarError, OperationSuperseded
from hangar.logstore.handler import about
from hangar.reconciler.queue import Work
from hangar.schemas.operations import Outcome, StepRecord
from hangar.store import repository
from hangar.store.models import OperationRow

log = logging.getLogger(__name__)


class Journal:
    """The record of one operation (`work`) in the store."""

    def __init__(self, ctx: Context, work: Work) -> None:
        self.ctx, self.work = ctx, work

    def record(self, text: str, **fields) -> None:
        """Record a step; an operation a delete closed meanwhile stops here (OperationSuperseded)."""
        if self.work.operation_id is None:  # adopting at start-up: no operation to report to
            return
        with self.ctx.store.session() as session:
            operation = session.get_one(OperationRow, self.work.operation_id)
            raise_if_closed(operation)
            repository.append_step(operation, StepRecord(step=text, **fields))
            repository.get_by_id(session, self.work.env_id).status_reason = text
            kind = operation.kind
        log.info("%s: %s", kind, text, **about(self.work.env_id))

    def record_in(self, session, text: str, **fields) -> None:
        """Record a step in the caller's transaction, with what it stores (a checkpoint)."""
        repository.append_step(session.get_one(OperationRow, self.work.operation_id), StepRecord(step=text, **fields))

    def progress(self, text: str, *, stop_if_closed: bool = False) -> None:
        """Show `text` as the status reason; a closed operation no longer reports, and stops here
        when `stop_if_closed` (not inside a runtime build, which is left to finish)."""
        if self.work.operation_id is None:
            return
        with self.ctx.store.session() as session:
            operation = session.get_one(OperationRow, self.work.operation_id)
            if stop_if_closed:
                raise_if_closed(operation)
            if not operation.done:
                repository.get_by_id(session, self.work.env_id).status_reason = text[:500]

    def throttled(self) -> Throttled:
        return Throttled(self.progress)

    def set_status(self, status: Status, reason: str) -> None:
        with self.ctx.store.session() as session:
            change_status(session, repository.get_by_id(session, self.work.env_id), status, reason=reason)

    def finish(self, revision: int, status: Status, reason: str) -> None:
        """The operation's end: `status`, and for AVAILABLE `revision` runs and is the last good one."""
        with self.ctx.store.session() as session:
            env = repository.get_by_id(session, self.work.env_id)
            operation = session.get_one(OperationRow, self.work.operation_id)
            if operation.done:  # closed by a delete meanwhile: the delete decides what happens now
                return
            repository.append_step(operation, StepRecord(step="done", outcome=Outcome.DONE))
            if status == Status.AVAILABLE:
                env.running_revision = env.last_good_revision = revision
            change_status(session, env, status, reason=reason)
        if status == Status.AVAILABLE:
            self.ctx.backend.watch(self.work.env_id)

    def rolling_back(self, previous: int, exc: HangarError) -> None:
        message = redact_failure(self.ctx, env_id=self.work.env_id, text=exc.message)
        with self.ctx.store.session() as session:
            env = repository.get_by_id(session, self.work.env_id)
            change_status(session, env, Status.ROLLING_BACK, reason=f"rolling back to revision {previous}: {message}",
                          error_code=exc.code, error_message=message)

    def rolled_back(self, previous: int) -> None:
        with self.ctx.store.session() as session:
            env = repository.get_by_id(session, self.work.env_id)
            env.running_revision = previous
            change_status(session, env, Status.AVAILABLE, reason=f"rolled back to revision {previous}")
            repository.append_step(session.get_one(OperationRow, self.work.operation_id),
                                   StepRecord(step="rolled back", outcome=Outcome.ROLLED_BACK))
        self.ctx.backend.watch(self.work.env_id)


def raise_if_closed(operation: OperationRow) -> None:
    if operation.done:
        steps = repository.steps_of(operation)
        last = steps[-1].step if steps else "done"
        raise OperationSuperseded(f"operation {operation.id} ({operation.kind}) was closed: {last}")


class Throttled:
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
