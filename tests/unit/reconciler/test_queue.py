"""ReconcileQueues: ordered per environment, parallel across environments, retries and failures.

Threads synchronise through Events with generous timeouts; no test asserts on how
long anything took.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from hangar.errors import PermanentError, TemporaryError
from hangar.reconciler import queue as queue_module
from hangar.reconciler.queue import ReconcileQueues, Work

pytestmark = pytest.mark.timeout(120)

WAIT = 30.0  # safety net only


class Recorder:
    """Collects handler calls and failures; lets a test wait for a number of them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[Work] = []
        self.failures: list[tuple[Work, Exception]] = []
        self.done: list[Work] = []
        self.changed = threading.Condition(self.lock)

    def record_call(self, work: Work) -> None:
        with self.lock:
            self.calls.append(work)
            self.changed.notify_all()

    def record_done(self, work: Work) -> None:
        with self.lock:
            self.done.append(work)
            self.changed.notify_all()

    def on_failure(self, work: Work, exc: Exception) -> None:
        with self.lock:
            self.failures.append((work, exc))
            self.changed.notify_all()

    def wait_for(self, predicate, what: str) -> None:
        with self.lock:
            if not self.changed.wait_for(predicate, timeout=WAIT):
                raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_queues(recorder: Recorder) -> Iterator:
    made: list[ReconcileQueues] = []

    def _make(handler) -> ReconcileQueues:
        queues = ReconcileQueues(handler=handler, on_failure=recorder.on_failure)
        made.append(queues)
        return queues

    yield _make
    for queues in made:
        queues.close()


def test_work_for_one_environment_runs_in_submission_order(make_queues, recorder):
    gate = threading.Event()

    def handler(work: Work) -> None:
        if work.operation_id == 0:
            gate.wait(WAIT)  # hold the first item so the rest pile up in the queue
        recorder.record_call(work)

    queues = make_queues(handler)
    for op in range(20):
        queues.submit(Work(env_id="env-a", operation_id=op))
    assert queues.busy()
    gate.set()
    recorder.wait_for(lambda: len(recorder.calls) == 20, "20 calls")
    assert [w.operation_id for w in recorder.calls] == list(range(20))
    assert recorder.failures == []


def test_work_for_one_environment_never_overlaps(make_queues, recorder):
    active = 0
    overlap = []
    lock = threading.Lock()

    def handler(work: Work) -> None:
        nonlocal active
        with lock:
            active += 1
            overlap.append(active)
        try:
            threading.Event().wait(0.001)  # give another thread a chance to run (not an assertion)
        finally:
            with lock:
                active -= 1
        recorder.record_call(work)

    queues = make_queues(handler)
    for op in range(30):
        queues.submit(Work(env_id="env-a", operation_id=op))
    recorder.wait_for(lambda: len(recorder.calls) == 30, "30 calls")
    assert max(overlap) == 1


def test_two_environments_run_concurrently(make_queues, recorder):
    a_started, b_started = threading.Event(), threading.Event()
    saw_other = {}

    def handler(work: Work) -> None:
        mine, other = (a_started, b_started) if work.env_id == "env-a" else (b_started, a_started)
        mine.set()
        # only possible if the other environment's handler runs at the same time as this one
        saw_other[work.env_id] = other.wait(WAIT)
        recorder.record_call(work)

    queues = make_queues(handler)
    queues.submit(Work(env_id="env-a", operation_id=1))
    queues.submit(Work(env_id="env-b", operation_id=2))
    recorder.wait_for(lambda: len(recorder.calls) == 2, "both environments")
    assert saw_other == {"env-a": True, "env-b": True}


def test_a_stuck_environment_does_not_block_another(make_queues, recorder):
    release = threading.Event()

    def handler(work: Work) -> None:
        if work.env_id == "stuck":
            release.wait(WAIT)
        recorder.record_call(work)

    queues = make_queues(handler)
    queues.submit(Work(env_id="stuck", operation_id=1))
    for op in range(3):
        queues.submit(Work(env_id="free", operation_id=op))
    recorder.wait_for(lambda: len(recorder.calls) == 3, "the free environment's work")
    assert all(w.env_id == "free" for w in recorder.calls)
    release.set()
    recorder.wait_for(lambda: len(recorder.calls) == 4, "the stuck environment's work")


def test_temporary_error_is_retried_then_succeeds(make_queues, recorder):
    attempts = []

    def handler(work: Work) -> None:
        attempts.append(work)
        if len(attempts) < 3:
            raise TemporaryError("database not up yet", delay=0.01)
        recorder.record_done(work)

    queues = make_queues(handler)
    work = Work(env_id="env-a", operation_id=7)
    queues.submit(work)
    recorder.wait_for(lambda: recorder.done, "success after retries")
    assert attempts == [work, work, work]
    assert recorder.failures == []


def test_temporary_errors_give_up_as_permanent(make_queues, recorder, monkeypatch):
    monkeypatch.setattr(queue_module, "MAX_TEMPORARY_RETRIES", 3)
    attempts = []

    def handler(work: Work) -> None:
        attempts.append(work)
        raise TemporaryError("still down", delay=0.001)

    queues = make_queues(handler)
    queues.submit(Work(env_id="env-a", operation_id=1))
    recorder.wait_for(lambda: recorder.failures, "the give-up")
    (work, exc), = recorder.failures
    assert isinstance(exc, PermanentError)
    assert "still down" in exc.message and "4 attempts" in exc.message
    assert len(attempts) == 4


def test_plain_exception_fails_the_work_and_the_loop_goes_on(make_queues, recorder):
    boom = ValueError("handler bug")

    def handler(work: Work) -> None:
        if work.operation_id == 1:
            raise boom
        recorder.record_done(work)

    queues = make_queues(handler)
    first, second = Work(env_id="env-a", operation_id=1), Work(env_id="env-a", operation_id=2)
    queues.submit(first)
    queues.submit(second)
    recorder.wait_for(lambda: recorder.done, "the next work item")
    assert recorder.failures == [(first, boom)]
    assert recorder.done == [second]


def test_permanent_error_is_not_retried(make_queues, recorder):
    attempts = []

    def handler(work: Work) -> None:
        attempts.append(work)
        raise PermanentError("bad requirements")

    queues = make_queues(handler)
    queues.submit(Work(env_id="env-a", operation_id=1))
    recorder.wait_for(lambda: recorder.failures, "the failure")
    assert len(attempts) == 1
    assert recorder.failures[0][1].message == "bad requirements"


def test_a_failing_on_failure_does_not_kill_the_loop(recorder):
    calls = []
    done = threading.Event()

    def handler(work: Work) -> None:
        calls.append(work.operation_id)
        if work.operation_id == 1:
            raise RuntimeError("first fails")
        done.set()

    def on_failure(work: Work, exc: Exception) -> None:
        raise RuntimeError("the store is down too")

    queues = ReconcileQueues(handler=handler, on_failure=on_failure)
    try:
        queues.submit(Work(env_id="env-a", operation_id=1))
        queues.submit(Work(env_id="env-a", operation_id=2))
        assert done.wait(WAIT)
        assert calls == [1, 2]
    finally:
        queues.close()


def test_close_stops_the_workers(make_queues, recorder):
    started, release = threading.Event(), threading.Event()
    workers: list[threading.Thread] = []

    def handler(work: Work) -> None:
        workers.append(threading.current_thread())
        started.set()
        release.wait(WAIT)
        recorder.record_call(work)

    queues = make_queues(handler)
    queues.submit(Work(env_id="env-a", operation_id=1))
    queues.submit(Work(env_id="env-a", operation_id=2))
    assert started.wait(WAIT)
    queues.close()
    release.set()
    workers[0].join(WAIT)
    assert not workers[0].is_alive()
    # the item in progress finished; the queued one was left for the next start-up
    assert [w.operation_id for w in recorder.calls] == [1]
