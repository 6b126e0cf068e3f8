"""An environment's snapshots and its joined worker hosts.

Snapshots: the list, taking one, restoring one into the environment, cloning one into a new
environment. Workers: the hosts that joined, the worker tokens, issuing one (shown once, with the
command a host joins with) and revoking one. The roles are the API's (hangar.api.routes.snapshots
and .workers): reading needs Viewer; taking, restoring and revoking need what an update needs (Op
or higher); a clone is a new environment and a token lets a host run the environment's tasks, so
both need Admin. After a snapshot action the environment's overview shows its progress.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Form, Request
from pydantic import ValidationError
from starlette.responses import Response

from hangar.api.auth import require
from hangar.api.console.pages.common import console_router
from hangar.api.console.pages.forms import blank_to_none, done, field_errors
from hangar.api.console.render import page
from hangar.api.deps import ContextDep, Reader
from hangar.domain import queries, snapshots, workers
from hangar.domain.snapshots import SnapshotRestore
from hangar.domain.status import UPDATABLE, Status
from hangar.errors import EnvironmentAlreadyExists, SnapshotNotFound
from hangar.schemas.workers import WorkerTokenCreate

router = console_router()
update = [Depends(require("update"))]
admin = [Depends(require("admin"))]
Text = Annotated[str, Form(max_length=2048)]
CELERY = "celery"
# where `hangar worker join` reads the token: hangar.agent.TOKEN_VARIABLE (the API layer does not import the agent)
TOKEN_VARIABLE = "HANGAR_WORKER_TOKEN"


def size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # not reached


def _overview(name: str) -> str:
    return f"/console/environments/{name}"


# --- snapshots ---


def _snapshots_page(request: Request, c, name: str, *, status_code: int = 200, clone_errors: dict | None = None,
                    clone_values: dict | None = None) -> Response:
    env = queries.get_environment(c, name=name)  # EnvironmentNotFound: the 404 page
    rows = [(snapshot, size(snapshot.size)) for snapshot in snapshots.list_snapshots(c, name=name)]
    return page(request, "snapshots.html", status_code=status_code, title=f"{name}: snapshots", section="environments",
                env=env, rows=rows, can_take=env.status == Status.AVAILABLE,
                can_restore=Status(env.status) in UPDATABLE, clone_errors=clone_errors or {},
                clone_values=clone_values or {})


@router.get("/environments/{name}/snapshots", name="console.snapshots")
def snapshots_page(request: Request, name: str, c: ContextDep, caller: Reader) -> Response:
    return _snapshots_page(request, c, name)


@router.post("/environments/{name}/snapshots", name="console.snapshot_create", dependencies=update)
def take(request: Request, name: str, c: ContextDep) -> Response:
    snapshots.create_snapshot(c, name=name)
    return done(request, _overview(name))


@router.post("/environments/{name}/snapshots/{snapshot_id}/restore", name="console.snapshot_restore",
             dependencies=update)
def restore(request: Request, name: str, snapshot_id: str, c: ContextDep) -> Response:
    snapshots.restore_snapshot(c, name=name, snapshot_id=snapshot_id)
    return done(request, _overview(name))


@router.post("/environments/{name}/snapshots/{snapshot_id}/clone", name="console.snapshot_clone", dependencies=admin)
def clone(request: Request, name: str, snapshot_id: str, c: ContextDep, into: Text = "") -> Response:
    into = into.strip()
    try:
        target = SnapshotRestore(into=into).into
    except ValidationError as exc:
        if snapshot_id not in {snapshot.id for snapshot in snapshots.list_snapshots(c, name=name)}:
            raise SnapshotNotFound(name, snapshot_id) from None  # no field to show the error at
        message = field_errors(exc, messages={"into:string_too_short": "enter the new environment's name"})["into"]
        return _snapshots_page(request, c, name, status_code=400, clone_errors={snapshot_id: message},
                               clone_values={snapshot_id: into})
    assert target is not None
    try:
        snapshots.restore_snapshot(c, name=name, snapshot_id=snapshot_id, into=target)
    except EnvironmentAlreadyExists as exc:
        return _snapshots_page(request, c, name, status_code=409, clone_errors={snapshot_id: exc.message},
                               clone_values={snapshot_id: into})
    return done(request, _overview(target))


# --- workers ---


def _workers_page(request: Request, c, name: str, *, status_code: int = 200, **context) -> Response:
    env = queries.get_environment(c, name=name)  # EnvironmentNotFound: the 404 page
    return page(request, "workers.html", status_code=status_code, title=f"{name}: workers", section="environments",
                env=env, celery=env.executor == CELERY,
                hosts=workers.list_hosts(c, name=name), tokens=workers.list_tokens(c, name=name),
                label=context.pop("label", ""), errors=context.pop("errors", {}), **context)


@router.get("/environments/{name}/workers", name="console.workers")
def workers_page(request: Request, name: str, c: ContextDep, caller: Reader, revoked: str | None = None) -> Response:
    return _workers_page(request, c, name, revoked=revoked)


@router.post("/environments/{name}/workers/tokens", name="console.worker_token_create", dependencies=admin)
def create_token(request: Request, name: str, c: ContextDep, label: Text = "") -> Response:
    try:
        body = WorkerTokenCreate(label=blank_to_none(label))
    except ValidationError as exc:
        errors = field_errors(exc, messages={"label:string_too_long": "use at most 200 characters"})
        return _workers_page(request, c, name, status_code=400, label=label, errors=errors)
    created = workers.issue_token(c, name=name, label=body.label)
    url = str(request.base_url).rstrip("/")
    join = (f"export {TOKEN_VARIABLE}={created.token}\n"
            f"hangar worker join --url {url} --environment {name}")
    # shown this once: the store keeps only its hash (and page() answers with Cache-Control: no-store)
    return _workers_page(request, c, name, status_code=201, created=created, join=join)


@router.post("/environments/{name}/workers/tokens/{token_id}/revoke", name="console.worker_token_revoke",
             dependencies=update)
def revoke_token(request: Request, name: str, token_id: str, c: ContextDep) -> Response:
    workers.revoke_token(c, name=name, token_id=token_id)
    return done(request, f"/console/environments/{name}/workers?revoked={token_id}")
