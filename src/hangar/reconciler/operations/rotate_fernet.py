"""rotate-fernet: UPDATING -> AVAILABLE with a new fernet key; a failure is UPDATE_FAILED.

Airflow's MultiFernet encrypts with the first key of [core] fernet_key and decrypts with
any. The new key is stored (as FERNET_NEXT, hangar.domain.secrets) before any component
sees it, and while it is stored every launch plan gives the components "new,old", so
nothing written with the new key can outlive the key:
  1. store FERNET_NEXT, or keep the one a failed or interrupted rotation left;
  2. restart the components with "new,old";
  3. `airflow rotate-fernet-key` re-encrypts connections, variables and triggers with "new";
  4. in one transaction: "new" becomes fernet_key, FERNET_NEXT goes, Checkpoint.FERNET_STORED is recorded;
  5. restart the components with "new" alone.
A failure before 4 leaves the old key stored as fernet_key and the environment running on
"new,old" (UPDATE_FAILED names the error); rotating again finishes with the same new key.
"""
from __future__ import annotations

import subprocess

from cryptography.fernet import Fernet

from hangar.backend.plan import LaunchPlan
from hangar.domain.secrets import FERNET_KEY, FERNET_NEXT
from hangar.domain.status import Status
from hangar.errors import PermanentError
from hangar.reconciler.operation import AfterFailure, Failure, Operation, fail_with
from hangar.reconciler.steps import Steps
from hangar.schemas.operations import Checkpoint, OperationKind
from hangar.store import repository
from hangar.store.models import OperationRow

_SECRET_VARS = ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY",
                "AIRFLOW__WEBSERVER__SECRET_KEY", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")


class FernetRotationFailed(PermanentError):
    code = "FERNET_ROTATION_FAILED"


def run(steps: Steps, revision: int) -> None:
    ctx, env_id = steps.ctx, steps.env_id
    steps.unwatch()
    with ctx.store.session() as session:
        operation = session.get_one(OperationRow, steps.work.operation_id)
        stored = any(step.checkpoint == Checkpoint.FERNET_STORED for step in repository.steps_of(operation))
        pending = FERNET_NEXT in repository.get_secrets(session, ctx.envelope, env_id=env_id)
        if not stored and not pending:
            repository.put_secret(session, ctx.envelope, env_id=env_id, name=FERNET_NEXT,
                                  value=Fernet.generate_key().decode())
    target = steps.prepare(revision)
    if not stored:
        steps.record("restarting components with the new and the old fernet key")
        steps.wait_ready(steps.relaunch(target))
        steps.record("re-encrypting connections, variables and triggers with the new fernet key")
        rotate_fernet_key(steps.launch_plan(target))
        with ctx.store.session() as session:
            new = repository.get_secrets(session, ctx.envelope, env_id=env_id)[FERNET_NEXT]
            repository.put_secret(session, ctx.envelope, env_id=env_id, name=FERNET_KEY, value=new)
            repository.delete_secret(session, env_id=env_id, name=FERNET_NEXT)
            steps.record_in(session, "new fernet key stored", checkpoint=Checkpoint.FERNET_STORED)
    steps.record("restarting components with the new fernet key alone")
    steps.wait_ready(steps.relaunch(target))
    steps.finish(revision, Status.AVAILABLE, "fernet key rotated")


def rotate_fernet_key(plan: LaunchPlan, timeout: float = 600) -> None:
    """`airflow rotate-fernet-key` in the environment the components get (process_env), so it
    reads the same airflow.cfg, database and "new,old" fernet keys."""
    try:
        result = subprocess.run([str(plan.airflow_bin), "rotate-fernet-key"], env=plan.env, cwd=plan.root,
                                capture_output=True, text=True, timeout=timeout,
                                **(plan.run_as.popen() if plan.run_as is not None else {}))
    except subprocess.TimeoutExpired:
        raise FernetRotationFailed(f"`airflow rotate-fernet-key` did not finish in {timeout:.0f} s") from None
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        for var in _SECRET_VARS:  # an error may quote the configuration it could not use
            value = plan.env.get(var, "")
            for part in filter(None, [value, *value.split(",")]):
                tail = tail.replace(part, "***")
        raise FernetRotationFailed(f"`airflow rotate-fernet-key` failed (exit {result.returncode}):\n{tail}")


def failed(failure: Failure) -> None:
    fail_with(failure, Status.UPDATE_FAILED)


OPERATION = Operation(kind=OperationKind.ROTATE_FERNET, run=run, on_failure=failed, after=AfterFailure.WATCH)
