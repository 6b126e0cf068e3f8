"""A joined host's heartbeats: what it runs, told to the control plane every few seconds.

They go out from a thread of their own, so a long runtime build never makes the host look LOST;
the interval is a quarter of the control plane's lost_after_seconds (1 to 5 s). The last one
says STOPPED, unless the token was revoked: then the host says nothing more. One heartbeat is
sent at a time, and none after the last.
"""
from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from hangar.agent.errors import ControlPlaneUnreachable, JoinRefused
from hangar.agent.logs import say
from hangar.errors import HangarError
from hangar.runtime import remote_worker

if TYPE_CHECKING:
    from hangar.agent.host import JoinedHost


class Heartbeats:
    def __init__(self, host: JoinedHost) -> None:
        self.host = host
        self.lost_after = 30.0
        self._sending = threading.Lock()  # one heartbeat at a time; none after the last (STOPPED) one
        self._finished = False

    def start(self) -> None:
        threading.Thread(target=self._run, name="heartbeat", daemon=True).start()

    def _run(self) -> None:
        host = self.host
        while not host.revoked:
            with host.lock:
                stopping = host.stop_reason is not None
                alive = host.processes()
            if stopping and not alive:
                return
            try:
                with self._sending:
                    if self._finished:
                        return
                    answer = host.plane.heartbeat(self.report())
                self.lost_after = float(answer.get("lost_after_seconds") or self.lost_after)
                host.reachable()
            except JoinRefused as exc:
                if exc.token_rejected:
                    host.cut_off(exc.message)
                    return
                say(f"heartbeat refused: {exc.message}")
            except ControlPlaneUnreachable as exc:
                host.unreachable(exc.message)
            time.sleep(max(1.0, min(5.0, self.lost_after / 4)))

    def report(self, *, stopped: bool = False) -> dict:
        host = self.host
        with host.lock:
            current, processes, bundle, runtime = host.current, host.processes(), host.bundle, host.applied.runtime
            stopping = host.stop_reason is not None
        state = "STOPPED" if stopped else ("DRAINING" if stopping or current is None else "RUNNING")
        nodes = [p.spec.argv[p.spec.argv.index("--celery-hostname") + 1] for p in processes
                 if "--celery-hostname" in p.spec.argv]
        concurrency = 0
        if current is not None and "--concurrency" in current.spec.argv:
            concurrency = int(current.spec.argv[current.spec.argv.index("--concurrency") + 1])
        return {
            "hostname": host.hostname, "concurrency": 0 if stopped else concurrency, "state": state,
            "running_tasks": 0 if stopped else sum(remote_worker.running_tasks(p.pid) for p in processes),
            "workers": [] if stopped else nodes,
            "airflow_version": bundle.airflow_version if bundle else None,
            "runtime_key": runtime.key if runtime else None,
        }

    def finish(self) -> None:
        """The last heartbeat: STOPPED, unless the token was revoked."""
        with self._sending:
            self._finished = True
            if self.host.revoked:
                return
            try:
                self.host.plane.heartbeat(self.report(stopped=True))
            except HangarError:
                pass
