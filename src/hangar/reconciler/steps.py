"""The steps every operation is made of, bound to one operation (`Steps(ctx, work)`).

Operations (hangar.reconciler.operations) call only these. Every step is idempotent, so
an operation a control-plane crash interrupted is simply run again from the top on
restart; each finished step is appended to the operation's record (hangar.reconciler.journal).
"""
from __future__ import annotations

from hangar.backend.environment_processes import EnvironmentProcesses
from hangar.backend.plan import LaunchPlan
from hangar.context import Context
from hangar.domain.status import Status
from hangar.errors import HangarError
from hangar.reconciler import checks, launching, staging
from hangar.reconciler.journal import Journal, Throttled
from hangar.reconciler.queue import Work
from hangar.reconciler.staging import Target
from hangar.runtime.airflow_config import EnvironmentLayout


class Steps:
    def __init__(self, ctx: Context, work: Work) -> None:
        self.ctx, self.work = ctx, work
        self.journal = Journal(ctx, work)

    @property
    def env_id(self) -> str:
        return self.work.env_id

    @property
    def layout(self) -> EnvironmentLayout:
        return staging.layout_of(self.ctx, self.work.env_id)

    # --- the record ---

    def record(self, text: str, **fields) -> None:
        """Append a finished step (fields: see hangar.schemas.operations.StepRecord)."""
        self.journal.record(text, **fields)

    def record_in(self, session, text: str, **fields) -> None:
        """`record` inside the caller's transaction (for a step that commits with what it stores)."""
        self.journal.record_in(session, text, **fields)

    def progress(self) -> Throttled:
        """A sink for a long step's progress lines, shown as the status reason."""
        return self.journal.throttled()

    def set_status(self, status: Status, reason: str) -> None:
        self.journal.set_status(status, reason)

    def finish(self, revision: int, status: Status, reason: str) -> None:
        self.journal.finish(revision, status, reason)

    # --- building and starting a revision ---

    def stage(self, revision: int) -> Target:
        return staging.stage(self.ctx, self.journal, revision)

    def activate(self, target: Target) -> None:
        staging.activate(target)

    def prepare(self, revision: int) -> Target:
        return staging.prepare(self.ctx, self.journal, revision)

    def launch_plan(self, target: Target) -> LaunchPlan:
        return launching.launch_plan(self.ctx, target)

    def launch(self, target: Target) -> EnvironmentProcesses:
        return launching.launch(self.ctx, self.journal, target)

    def relaunch(self, target: Target) -> EnvironmentProcesses:
        return launching.relaunch(self.ctx, self.journal, target)

    def go_live(self, target: Target) -> EnvironmentProcesses:
        """Activate a staged revision and launch it."""
        self.activate(target)
        return self.launch(target)

    def wait_ready(self, processes: EnvironmentProcesses) -> None:
        launching.wait_ready(self.ctx, self.journal, processes)

    def check_broker(self, target: Target) -> None:
        checks.check_broker(self.ctx, self.journal, target)

    def preflight(self, target: Target, old: Target) -> None:
        checks.preflight_checks(self.ctx, self.journal, target, old)

    # --- stopping and going back ---

    def stop(self, *, drain: bool = False) -> None:
        """Stop the environment's components (the scheduler draining its tasks first when `drain`)."""
        processes = self.ctx.backend.get(self.env_id)
        if drain and processes is not None:
            processes.stop(drain=True)
        self.ctx.backend.stop_environment(self.env_id, self.layout.root)

    def unwatch(self) -> None:
        """The health watch leaves the environment alone while the operation changes it."""
        self.ctx.backend.watch(self.env_id, False)

    def rolling_back(self, previous: int, exc: HangarError) -> None:
        self.journal.rolling_back(previous, exc)

    def rolled_back(self, previous: int) -> None:
        self.journal.rolled_back(previous)

    def roll_back(self, old: Target, exc: HangarError) -> None:
        """The switch began and a component did not come up: the last good revision returns,
        through the same one-at-a-time replacement."""
        self.rolling_back(old.revision, exc)
        self.wait_ready(self.go_live(old))
        self.rolled_back(old.revision)
