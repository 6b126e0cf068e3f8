"""Per-environment work queues, in the manner of kopf.

Work for one environment runs in order on that environment's own thread;
different environments run in parallel. A handler raising TemporaryError is
retried after its delay (growing), PermanentError fails the work with its
message, and any other exception is treated as permanent with its text. No
handler's exception ever escapes into the loop.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from hangar.errors import PermanentError, TemporaryError

log = logging.getLogger(__name__)

MAX_TEMPORARY_RETRIES = 8


@dataclass(frozen=True, kw_only=True)
class Work:
    env_id: str
    operation_id: int | None  # None: resuming an environment at start-up, no operation


Handler = Callable[[Work], None]
OnFailure = Callable[[Work, Exception], None]


class ReconcileQueues:
    def __init__(self, *, handler: Handler, on_failure: OnFailure) -> None:
        self._handler = handler
        self._on_failure = on_failure
        self._queues: dict[str, queue.Queue[Work | None]] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def submit(self, work: Work) -> None:
        with self._lock:
            q = self._queues.get(work.env_id)
            if q is None:
                q = self._queues[work.env_id] = queue.Queue()
                thread = threading.Thread(target=self._run, args=(work.env_id, q), name=f"reconcile-{work.env_id[:8]}", daemon=True)
                self._threads[work.env_id] = thread
                thread.start()
            q.put(work)

    def _run(self, env_id: str, q: queue.Queue[Work | None]) -> None:
        while not self._stopping.is_set():
            try:
                work = q.get(timeout=30)
            except queue.Empty:
                with self._lock:  # idle: retire this thread
                    if q.empty():
                        self._queues.pop(env_id, None)
                        self._threads.pop(env_id, None)
                        return
                continue
            if work is None:
                return
            self._process(work)

    def _process(self, work: Work) -> None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                self._handler(work)
                return
            except TemporaryError as exc:
                attempt += 1
                if attempt > MAX_TEMPORARY_RETRIES:
                    self._fail(work, PermanentError(f"gave up after {attempt} attempts: {exc.message}"))
                    return
                delay = min(exc.delay * (2 ** (attempt - 1)), 60)
                log.warning("temporary error on %s, retrying in %.0f s: %s", work.env_id, delay, exc.message)
                self._stopping.wait(delay)
            except Exception as exc:  # permanent, named or not
                self._fail(work, exc)
                return

    def _fail(self, work: Work, exc: Exception) -> None:
        try:
            self._on_failure(work, exc)
        except Exception:
            log.exception("recording the failure of %s failed", work)

    def busy(self) -> bool:
        with self._lock:
            return any(not q.empty() for q in self._queues.values()) or bool(self._threads)

    def close(self) -> None:
        self._stopping.set()
        with self._lock:
            for q in self._queues.values():
                q.put(None)
