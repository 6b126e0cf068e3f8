"""A revision's outcome in the history comes from the typed outcome its operation recorded."""
from __future__ import annotations

from hangar.context import Context
from hangar.domain.queries import list_history
from hangar.domain.status import Status
from hangar.errors import ComponentFailed
from hangar.reconciler.queue import Work
from hangar.reconciler.reconciler import Reconciler
from hangar.reconciler.steps import Steps
from hangar.schemas.operations import OperationKind, Outcome
from hangar.schemas.spec import Spec
from hangar.store import repository
from tests.unit.domain.test_operations import make_env


def _next_revision(ctx: Context, env_id: str, number: int) -> Work:
    with ctx.store.session() as session:
        env = repository.get_by_id(session, env_id)
        env.revision = number
        repository.add_revision(session, env, Spec(dags=f"/srv/dags{number}", airflow_version="3.3.2"), number)
        operation = repository.open_operation(session, env_id=env_id, kind=OperationKind.UPDATE, revision=number)
        return Work(env_id=env_id, operation_id=operation.id)


def test_applied_rolled_back_and_failed_revisions(ctx: Context) -> None:
    env_id, create = make_env(ctx, Status.CREATING)
    Steps(ctx, Work(env_id=env_id, operation_id=create)).finish(1, Status.AVAILABLE, "revision 1 is running")

    rolled = Steps(ctx, _next_revision(ctx, env_id, 2))
    rolled.set_status(Status.UPDATING, "updating")
    rolled.rolling_back(1, ComponentFailed("scheduler did not start"))
    rolled.rolled_back(1)

    failing = _next_revision(ctx, env_id, 3)
    Steps(ctx, failing).set_status(Status.UPDATING, "updating")
    Reconciler(ctx).fail(failing, ComponentFailed("the web server did not start"))

    with ctx.store.session() as session:
        name = repository.get_by_id(session, env_id).name
        outcomes = [repository.steps_of(op)[-1].outcome for op in repository.list_operations(session, env_id)]
    assert outcomes == [Outcome.DONE, Outcome.ROLLED_BACK, Outcome.FAILED]
    history = {r.revision: (r.status, r.error) for r in list_history(ctx, name=name)}
    assert history[1] == ("APPLIED", None)
    assert history[2][0] == "ROLLED_BACK"
    assert history[3] == ("FAILED", "the web server did not start")
