"""ManagedProcess: supervisor states driven by a fake clock, with real short child processes.

Only the state machine's notion of time is faked; processes are real, so the tests
wait (boundedly, in real time) for a child to actually exit before ticking.
"""
from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from hangar.backend.process import ManagedProcess, ProcessSpec, ProcessState

pytestmark = pytest.mark.timeout(120)

SLEEP = ["sleep", "600"]  # never ends on its own within a test
EXIT_3 = ["sh", "-c", "exit 3"]
# prints once SIGTERM is ignored, so the test never signals before the trap is in place
IGNORE_TERM = ["sh", "-c", 'trap "" TERM; echo ready; sleep 600']


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_until(predicate: Callable[[], bool], *, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll in real time; the timeout is only a safety net, never an assertion about speed."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def pid_file_record(mp: ManagedProcess) -> dict | None:
    try:
        return json.loads(mp.spec.pid_file.read_text())
    except FileNotFoundError:
        return None


def gone(pid: int, create_time: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - create_time) >= 0.01 or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make(tmp_path: Path, clock: FakeClock):
    made: list[ManagedProcess] = []

    def _make(argv: list[str], *, name: str = "comp", **spec_fields) -> ManagedProcess:
        spec = ProcessSpec(
            name=name, argv=argv, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, cwd=tmp_path,
            log_file=tmp_path / "logs" / f"{name}.log", pid_file=tmp_path / "run" / f"{name}.pid", **spec_fields,
        )
        mp = ManagedProcess(spec=spec, clock=clock)
        made.append(mp)
        return mp

    yield _make

    # kill only children we spawned and have not reaped (so the pid cannot have been recycled)
    for mp in made:
        popen = mp._popen
        if popen is not None and popen.poll() is None:
            try:
                os.killpg(popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            popen.wait(timeout=30)


def tick_until_exit_seen(mp: ManagedProcess) -> None:
    wait_until(lambda: not mp.is_alive(), what=f"{mp.spec.argv} to exit")
    mp.tick()


# --- start / STARTING -> RUNNING ---


def test_start_writes_pid_file_and_becomes_running_only_after_start_seconds(make, clock):
    mp = make(SLEEP, start_seconds=3.0)
    assert mp.state == ProcessState.STOPPED
    mp.start()
    assert mp.state == ProcessState.STARTING
    assert mp.is_alive()
    record = pid_file_record(mp)
    assert record is not None
    assert record["pid"] == mp.pid
    assert record["create_time"] == pytest.approx(psutil.Process(mp.pid).create_time(), abs=0.01)
    assert record["argv"] == SLEEP

    mp.tick()
    assert mp.state == ProcessState.STARTING
    clock.advance(2.5)
    mp.tick()
    assert mp.state == ProcessState.STARTING
    clock.advance(0.5)
    mp.tick()
    assert mp.state == ProcessState.RUNNING
    assert mp.failures == 0 and mp.reason is None
    assert mp.is_alive()


def test_a_process_proved_ready_is_running_before_start_seconds(make, clock):
    mp = make(SLEEP, start_seconds=3.0)
    mp.ready()  # not started: nothing to prove
    assert mp.state == ProcessState.STOPPED
    mp.start()
    mp.ready()
    assert mp.state == ProcessState.RUNNING and mp.failures == 0


def test_a_dead_process_is_not_made_ready(make, clock):
    mp = make(["sh", "-c", "exit 1"], start_seconds=3.0)
    mp.start()
    wait_until(lambda: not mp.is_alive(), what="the process to exit")
    mp.ready()
    assert mp.state == ProcessState.STARTING
    mp.tick()
    assert mp.state == ProcessState.BACKOFF


def test_child_runs_in_its_own_session_with_the_given_cwd(make, tmp_path):
    mp = make(SLEEP)
    mp.start()
    proc = psutil.Process(mp.pid)
    assert os.getpgid(mp.pid) == mp.pid
    assert os.getsid(mp.pid) == mp.pid
    assert Path(proc.cwd()) == tmp_path


def test_output_goes_to_the_log_file(make, tmp_path):
    mp = make(["sh", "-c", "echo hello-out; echo hello-err >&2"])
    mp.start()
    wait_until(lambda: not mp.is_alive())
    text = mp.spec.log_file.read_text()
    assert "hello-out" in text and "hello-err" in text


# --- STARTING -> RUNNING by a ready file (Celery workers) ---


def test_with_a_ready_file_starting_outlasts_start_seconds_until_the_file_appears(make, clock, tmp_path):
    ready = tmp_path / "run" / "comp.ready"
    mp = make(SLEEP, start_seconds=3.0, ready_file=ready)
    mp.start()
    clock.advance(60.0)  # far past start_seconds: staying up is not being ready
    mp.tick()
    assert mp.state == ProcessState.STARTING
    ready.write_text(f"{mp.pid}\n")
    mp.tick()
    assert mp.state == ProcessState.RUNNING
    assert mp.failures == 0 and mp.reason is None


def test_a_ready_file_from_an_earlier_start_does_not_count(make, clock, tmp_path):
    ready = tmp_path / "run" / "comp.ready"
    ready.parent.mkdir(parents=True)
    ready.write_text("4242\n")  # left by a worker of that name that ran before
    mp = make(SLEEP, start_seconds=1.0, start_retries=3, ready_file=ready)
    mp.start()
    clock.advance(10.0)
    mp.tick()
    assert mp.state == ProcessState.STARTING

    ready.write_text(f"{mp.pid}\n")
    mp.tick()
    assert mp.state == ProcessState.RUNNING
    os.kill(mp.pid, signal.SIGKILL)  # restarted after a crash: its predecessor's file does not count either
    tick_until_exit_seen(mp)
    assert mp.state == ProcessState.BACKOFF
    clock.advance(1.0)
    mp.tick()
    assert mp.state == ProcessState.STARTING and mp.restarts == 1
    clock.advance(10.0)
    mp.tick()
    assert mp.state == ProcessState.STARTING


def test_with_a_ready_file_an_exit_before_ready_still_fails_the_start(make, clock, tmp_path):
    ready = tmp_path / "run" / "comp.ready"
    mp = make(EXIT_3, start_seconds=5.0, start_retries=1, ready_file=ready)
    mp.start()
    clock.advance(20.0)  # later than start_seconds: the reason says what happened, not "within 5 s"
    tick_until_exit_seen(mp)
    assert mp.state == ProcessState.BACKOFF and mp.failures == 1
    assert mp.reason == "exited with code 3 before it was ready (20 s after starting)"
    # a process that wrote its file and exited before the next look is a failed start too
    mp.spec = replace(mp.spec, argv=["sh", "-c", f"echo $$ > {ready}; exit 3"])
    clock.advance(1.0)
    mp.tick()
    assert mp.state == ProcessState.STARTING
    wait_until(lambda: ready.exists(), what="the ready file")
    tick_until_exit_seen(mp)
    assert mp.state == ProcessState.FATAL and "code 3" in mp.reason


def test_an_adopted_process_with_a_ready_file_is_running(make, tmp_path):
    """A control plane that restarted adopts a live worker as RUNNING, as any other component."""
    ready = tmp_path / "run" / "worker-1.ready"
    first = make(SLEEP, name="worker-1", ready_file=ready)
    first.start()
    second = make(SLEEP, name="worker-1", ready_file=ready)
    assert second.adopt() and second.state == ProcessState.RUNNING and not second.stale


# --- early exits: BACKOFF, growing delay, FATAL ---


def test_early_exit_backs_off_with_growing_delay_then_fatal(make, clock):
    mp = make(EXIT_3, start_seconds=5.0, start_retries=2)
    mp.start()
    tick_until_exit_seen(mp)
    assert mp.state == ProcessState.BACKOFF
    assert mp.failures == 1
    assert mp.reason == "exited with code 3 within 5 s of starting"

    # first retry after 1 s
    clock.advance(0.5)
    mp.tick()
    assert mp.state == ProcessState.BACKOFF and mp.restarts == 0
    clock.advance(0.5)
    mp.tick()
    assert mp.state == ProcessState.STARTING and mp.restarts == 1

    tick_until_exit_seen(mp)
    assert mp.state == ProcessState.BACKOFF
    assert mp.failures == 2

    # second retry only after 2 s
    clock.advance(1.5)
    mp.tick()
    assert mp.state == ProcessState.BACKOFF and mp.restarts == 1
    clock.advance(0.5)
    mp.tick()
    assert mp.state == ProcessState.STARTING and mp.restarts == 2
    assert mp.spec.pid_file.exists()

    # start_retries + 1 failures in a row: give up
    tick_until_exit_seen(mp)
    assert mp.state == ProcessState.FATAL
    assert mp.failures == 3
    assert "code 3" in mp.reason and "gave up after 3 failures" in mp.reason
    assert not mp.spec.pid_file.exists()

    clock.advance(3600)
    mp.tick()
    assert mp.state == ProcessState.FATAL and mp.restarts == 2


def test_retry_delay_keeps_doubling(make, clock):
    mp = make(EXIT_3, start_seconds=5.0, start_retries=10)
    mp.start()
    delays = []
    for _ in range(4):
        tick_until_exit_seen(mp)
        assert mp.state == ProcessState.BACKOFF
        waited = 0.0
        while mp.state == ProcessState.BACKOFF:
            clock.advance(0.5)
            waited += 0.5
            mp.tick()
        delays.append(waited)
    assert delays == [1.0, 2.0, 4.0, 8.0]


def test_fatal_with_zero_retries_after_first_failure(make, clock):
    mp = make(EXIT_3, start_retries=0)
    mp.start()
    tick_until_exit_seen(mp)
    assert mp.state == ProcessState.FATAL
    assert not mp.spec.pid_file.exists()


def test_stop_during_backoff_cancels_the_retry(make, clock):
    mp = make(EXIT_3, start_retries=3)
    mp.start()
    tick_until_exit_seen(mp)
    assert mp.state == ProcessState.BACKOFF
    mp.stop()
    assert mp.state == ProcessState.STOPPED
    assert not mp.spec.pid_file.exists()
    clock.advance(60)
    mp.tick()
    assert mp.state == ProcessState.STOPPED and mp.restarts == 0


# --- unexpected exit while RUNNING ---


def test_running_process_killed_is_restarted(make, clock):
    mp = make(SLEEP, start_seconds=1.0, start_retries=3)
    mp.start()
    clock.advance(1.0)
    mp.tick()
    assert mp.state == ProcessState.RUNNING
    old_pid, old_ct = mp.pid, mp.create_time

    os.kill(old_pid, signal.SIGKILL)
    tick_until_exit_seen(mp)
    assert mp.state == ProcessState.BACKOFF
    assert "exited unexpectedly" in mp.reason and str(-signal.SIGKILL) in mp.reason
    assert mp.failures == 1 and mp.restarts == 0

    clock.advance(1.0)
    mp.tick()
    assert mp.state == ProcessState.STARTING
    assert mp.restarts == 1
    assert (mp.pid, mp.create_time) != (old_pid, old_ct)
    assert mp.is_alive()
    assert pid_file_record(mp)["pid"] == mp.pid

    clock.advance(1.0)
    mp.tick()
    assert mp.state == ProcessState.RUNNING
    assert mp.failures == 1  # not forgotten until it has been stable
    assert mp.restarts == 1

    clock.advance(mp.spec.stable_seconds)
    mp.tick()
    assert mp.state == ProcessState.RUNNING
    assert mp.failures == 0 and mp.reason is None
    assert mp.restarts == 1


def test_crash_loop_that_outlives_start_seconds_still_ends_fatal(make, clock):
    """Airflow components crash on bad config only after seconds of imports."""
    mp = make(SLEEP, start_seconds=1.0, start_retries=2)
    mp.start()
    for _ in range(3):
        clock.advance(1.0)
        mp.tick()
        assert mp.state == ProcessState.RUNNING
        os.kill(mp.pid, signal.SIGKILL)
        tick_until_exit_seen(mp)
        if mp.state == ProcessState.FATAL:
            break
        assert mp.state == ProcessState.BACKOFF
        clock.advance(4.0)
        mp.tick()
    assert mp.state == ProcessState.FATAL
    assert "gave up after 3 failures" in mp.reason


# --- stop ---


def test_stop_honoured_sigterm_stops_without_waiting_for_grace(make, clock):
    mp = make(SLEEP, start_seconds=1.0, stop_grace=20.0)
    mp.start()
    clock.advance(1.0)
    mp.tick()
    pid, ct = mp.pid, mp.create_time
    mp.stop()
    assert mp.state == ProcessState.STOPPING

    def ticked_to_stopped() -> bool:
        mp.tick()  # the fake clock does not move: only the SIGTERM can end this
        return mp.state == ProcessState.STOPPED

    wait_until(ticked_to_stopped, what="STOPPED after SIGTERM")
    assert mp.pid is None and mp.create_time is None
    assert not mp.spec.pid_file.exists()
    assert gone(pid, ct)


def test_stop_sigkills_a_process_ignoring_sigterm_after_grace(make, clock):
    mp = make(IGNORE_TERM, start_seconds=1.0, stop_grace=10.0)
    mp.start()
    wait_until(lambda: mp.spec.log_file.exists() and "ready" in mp.spec.log_file.read_text(), what="trap installed")
    clock.advance(1.0)
    mp.tick()
    assert mp.state == ProcessState.RUNNING
    pid, ct = mp.pid, mp.create_time
    group = [(p.pid, p.create_time()) for p in psutil.Process(pid).children(recursive=True)]

    mp.stop()
    assert mp.state == ProcessState.STOPPING
    clock.advance(9.5)
    mp.tick()
    assert mp.state == ProcessState.STOPPING
    assert mp.is_alive(), "SIGTERM is ignored: only SIGKILL may end it"

    clock.advance(0.5)
    mp.tick()
    assert mp.state == ProcessState.STOPPED
    assert mp.pid is None
    assert not mp.spec.pid_file.exists()
    wait_until(lambda: gone(pid, ct), what="the shell to die")
    for child_pid, child_ct in group:  # SIGKILL went to the whole process group
        wait_until(lambda: gone(child_pid, child_ct), what=f"child {child_pid} to die")


def test_a_leader_first_stop_leaves_the_children_to_the_leader(make, clock, tmp_path):
    """Airflow's scheduler ends its LocalExecutor workers itself: they get no SIGTERM of their own
    (one that dies holding the task queue's lock would keep the scheduler waiting until SIGKILL).
    What the leader leaves behind is killed once it has exited."""
    marker = tmp_path / "child-got-term"
    script = (f"sh -c 'trap \"touch {marker}; exit 0\" TERM; echo child-ready; while :; do sleep 0.1; done' & "
              "trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done")
    mp = make(["sh", "-c", script], start_seconds=1.0, stop_grace=20.0, stop_leader_first=True)
    mp.start()
    wait_until(lambda: mp.spec.log_file.exists() and "child-ready" in mp.spec.log_file.read_text(), what="both ready")
    children = [(p.pid, p.create_time()) for p in psutil.Process(mp.pid).children(recursive=True)]
    mp.stop()

    def stopped() -> bool:
        mp.tick()  # the fake clock does not move: the leader's own exit ends this
        return mp.state == ProcessState.STOPPED

    wait_until(stopped, what="STOPPED after the leader's SIGTERM")
    for child_pid, child_ct in children:
        wait_until(lambda: gone(child_pid, child_ct), what=f"child {child_pid} to be killed")
    assert not marker.exists(), "the child was sent SIGTERM"


def test_stop_when_stopped_is_a_no_op(make):
    mp = make(SLEEP)
    mp.stop()
    assert mp.state == ProcessState.STOPPED


# --- adopt ---


def test_adopt_takes_over_a_live_process_from_the_pid_file(make, clock):
    first = make(SLEEP, name="sched")
    first.start()
    second = make(SLEEP, name="sched")  # a restarted control plane, same pid file
    assert second.adopt() is True
    assert second.state == ProcessState.RUNNING
    assert (second.pid, second.create_time) == (first.pid, first.create_time)
    assert second.is_alive()

    # the adopted process can be supervised and stopped by its new owner
    pid, ct = second.pid, second.create_time
    second.stop()
    assert second.state == ProcessState.STOPPING

    def ticked_to_stopped() -> bool:
        second.tick()
        return second.state == ProcessState.STOPPED

    wait_until(ticked_to_stopped, what="adopted process to stop")
    assert gone(pid, ct)
    assert not second.spec.pid_file.exists()


def test_adopt_refuses_a_recycled_pid(make):
    first = make(SLEEP, name="web")
    first.start()
    record = pid_file_record(first)
    # same pid, but a different start time: the pid now belongs to someone else
    first.spec.pid_file.write_text(json.dumps({**record, "create_time": record["create_time"] - 100.0}))
    second = make(SLEEP, name="web")
    assert second.adopt() is False
    assert second.state == ProcessState.STOPPED
    assert second.pid is None
    assert first.is_alive()  # refusing to adopt never touches the process


def test_adopt_refuses_missing_damaged_or_dead_pid_files(make):
    mp = make(SLEEP, name="trig")
    assert mp.adopt() is False  # no pid file

    mp.spec.pid_file.parent.mkdir(parents=True, exist_ok=True)
    mp.spec.pid_file.write_text("{not json")
    assert mp.adopt() is False

    dead = make(EXIT_3, name="dead")
    dead.start()
    wait_until(lambda: not dead.is_alive())
    dead._reap()
    mp.spec.pid_file.write_text(dead.spec.pid_file.read_text())
    assert mp.adopt() is False
    assert mp.state == ProcessState.STOPPED


def test_children_left_in_the_group_die_with_a_crashed_leader(make, clock):
    """A killed scheduler must not leave its executor workers running forever."""
    mp = make(["sh", "-c", "sleep 600 & wait"], start_seconds=1.0, start_retries=3)
    mp.start()
    leader = psutil.Process(mp.pid)
    child = wait_for_child(leader)
    os.kill(mp.pid, signal.SIGKILL)
    tick_until_exit_seen(mp)
    assert mp.state == ProcessState.BACKOFF
    child.wait(timeout=10)
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    mp.stop_and_wait()


def wait_for_child(leader: "psutil.Process") -> "psutil.Process":
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = leader.children()
        if children:
            return children[0]
        time.sleep(0.05)
    raise AssertionError("the leader never forked its child")


def test_an_adopted_process_started_from_another_spec_is_stale(make, clock):
    first = make(["sleep", "60"])
    first.start()
    same = make(["sleep", "60"])
    assert same.adopt() and not same.stale
    other = make(["sleep", "61"])  # what an update cut short by a crash had not yet replaced
    assert other.adopt() and other.stale


def test_drain_signals_the_leader_alone_and_waits_for_it(make, clock, tmp_path):
    # the leader traps TERM and finishes its "task" (a child in its group) before exiting
    done = tmp_path / "task-finished"
    script = f"trap 'wait $child; exit 0' TERM; (sleep 1; touch {done}) & child=$!; while true; do sleep 0.1; done"
    mp = make(["bash", "-c", script])
    mp.start()
    wait_until(lambda: len(psutil.Process(mp.pid).children()) >= 1, what="the child to start")
    mp.drain(grace=60)
    assert mp.state == ProcessState.STOPPING
    wait_until(lambda: (mp.tick(), mp.state == ProcessState.STOPPED)[1], what="the drained leader to exit")
    assert done.exists()  # SIGTERM to the whole group would have killed the task before it finished
