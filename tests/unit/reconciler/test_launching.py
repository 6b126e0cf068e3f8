"""The order in which an update replaces components: those without the web port together, their
start proofs overlapping, then the web server. A stand-in process table records what happens."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from hangar.errors import ComponentFailed
from hangar.reconciler import launching
from hangar.reconciler.journal import Journal
from hangar.reconciler.queue import Work

ROLES = {"dag-processor": "dag-processor", "triggerer": "triggerer", "scheduler": "scheduler", "api-server": "api-server"}


@dataclass
class Table:
    """A process table whose components become healthy at the first look after a replace."""

    events: list[str] = field(default_factory=list)
    web: str = "api-server"
    settling: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.components = {n: SimpleNamespace(role=r, replace="drain" if n == "scheduler" else "overlap")
                           for n, r in ROLES.items()}
        self.plan = SimpleNamespace(env_id="e")
        self.processes = {n: SimpleNamespace(create_time=1.0, failures=0, reason=None, spec=SimpleNamespace(
            log_file=Path("/nonexistent"))) for n in ROLES}

    def replace(self, name: str) -> None:
        self.events.append(f"replace {name}")
        self.settling.add(name)

    def warm_web(self) -> None:
        self.events.append("warm web")

    def proved(self, name, process) -> None:
        self.events.append(f"proved {name}")

    def health(self):
        if self.settling:
            self.events.append("proof " + ",".join(sorted(self.settling)))
        settling, self.settling = sorted(self.settling), set()
        return SimpleNamespace(healthy=True, flapping=[], settling=settling, fatal=False, reason="")


def _launch(monkeypatch, changed: list[str]) -> list[str]:
    """Launch with `changed` components to replace; what the stand-in table saw, in order."""
    table = Table()
    ctx = SimpleNamespace(settings=SimpleNamespace(ready_timeout=5.0),
                          backend=SimpleNamespace(launch=lambda plan, adopt: (table, list(changed)), look=lambda env_id: None))
    monkeypatch.setattr(launching, "launch_plan", lambda ctx, target: None)
    monkeypatch.setattr(launching.time, "sleep", lambda seconds: None)

    def job_running(url, *, job_type, since):
        table.events.append(f"job {job_type}")
        return True

    monkeypatch.setattr(launching.metadb, "job_running_since", job_running)
    launching.launch(ctx, Journal(ctx, Work(env_id="e", operation_id=None)), SimpleNamespace(db_url="db"))
    return table.events


def test_components_without_the_port_are_replaced_together_then_the_web_server(monkeypatch) -> None:
    assert _launch(monkeypatch, ["dag-processor", "triggerer", "scheduler", "api-server"]) == [
        "replace dag-processor", "replace triggerer", "replace scheduler", "warm web",
        # each counts as started once its Airflow job runs, then all must be healthy
        "job DagProcessorJob", "proved dag-processor", "job TriggererJob", "proved triggerer",
        "job SchedulerJob", "proved scheduler", "proof dag-processor,scheduler,triggerer",
        "replace api-server", "proof api-server",  # no job: its health check proves it (tick)
    ]


def test_a_change_of_the_web_server_alone_replaces_only_it(monkeypatch) -> None:
    assert _launch(monkeypatch, ["api-server"]) == ["warm web", "replace api-server", "proof api-server"]


def test_the_web_server_is_not_warmed_when_it_does_not_change(monkeypatch) -> None:
    assert _launch(monkeypatch, ["scheduler"]) == ["replace scheduler", "job SchedulerJob", "proved scheduler",
                                                   "proof scheduler"]


def test_a_worker_that_never_says_it_is_ready_fails_the_launch_by_name_with_its_log(tmp_path) -> None:
    """Workers do not make an environment unhealthy, but a launch waits for them to be ready: when
    time runs out, the error names the worker and shows its log, not an empty reason."""
    log = tmp_path / "worker-1.log"
    log.write_text("consumer: Cannot connect to redis://127.0.0.1:6390/0: Connection refused.\n")
    worker = SimpleNamespace(reason=None, spec=SimpleNamespace(log_file=log))
    processes = SimpleNamespace(
        plan=SimpleNamespace(env_id="e"), processes={"worker-1": worker},
        health=lambda: SimpleNamespace(healthy=True, flapping=(), settling=("worker-1",), fatal=False, reason=None))
    ctx = SimpleNamespace(settings=SimpleNamespace(ready_timeout=-1.0), backend=SimpleNamespace(look=lambda env_id: None))
    with pytest.raises(ComponentFailed) as failed:
        launching.wait_ready(ctx, Journal(ctx, Work(env_id="e", operation_id=None)), processes)
    message = str(failed.value)
    assert "starting: worker-1" in message and "None" not in message
    assert "--- last lines of worker-1 log ---" in message and "Cannot connect to redis" in message
