"""Native routes for hosts that join an environment's Celery workers.

Two kinds of caller, on two routers:
- people, with the API's own keys: issuing a worker token needs Admin (a token lets a host run
  the environment's tasks); revoking one needs what an update needs (Op or higher); listing
  tokens and hosts needs read;
- joined hosts, with a worker token (`Authorization: Bearer hwt_...`) and nothing else: the
  heartbeat, the worker bundle (hangar.domain.worker_bundle: the running revision with its
  secrets, addresses as the host reaches them) and its DAGs and plugins archives, and any route
  that declares `Depends(require_worker_token)`. The token must belong to the environment in the path. The API's own keys are not accepted on these routes,
  and worker tokens are accepted nowhere else (every other router requires a principal).

A worker call is audited with `worker-token/<id>` as its principal; the token never is.
"""
from __future__ import annotations

import os
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.background import BackgroundTask

from hangar.api.auth import principal, require
from hangar.api.deps import ContextDep
from hangar.domain import worker_bundle, workers
from hangar.domain.access import Principal, Role
from hangar.domain.worker_bundle import WorkerBundle
from hangar.domain.workers import VerifiedWorkerToken, WorkerTokenInvalid
from hangar.schemas.workers import (
    Heartbeat, HeartbeatAccepted, WorkerHostPublic, WorkerTokenCreate, WorkerTokenCreated, WorkerTokenPublic,
)

PREFIX = "/api/v1/environments/{name}"
worker_bearer = HTTPBearer(auto_error=False, scheme_name="WorkerToken",
                           description="a worker token (hwt_...) from `hangar worker token create`")


def require_worker_token(
    name: str, request: Request, c: ContextDep,
    credentials: HTTPAuthorizationCredentials | None = Depends(worker_bearer),
) -> VerifiedWorkerToken:
    """The live worker token of environment `name` the request carries; 401 or 403 otherwise."""
    if credentials is None:
        raise WorkerTokenInvalid(name)
    caller = workers.verify_token(c, name=name, token=credentials.credentials)
    # for the audit log only: no route reads this principal for authorization
    request.state.principal = Principal(id=f"worker-token/{caller.token_id}", role=Role.Viewer)
    return caller


WorkerCaller = Annotated[VerifiedWorkerToken, Depends(require_worker_token)]

people = APIRouter(prefix=PREFIX, dependencies=[Depends(principal)], tags=["workers"])
hosts = APIRouter(prefix=PREFIX, tags=["workers"])


@people.post("/worker-tokens", status_code=201, name="workers.token_create", dependencies=[Depends(require("admin"))])
def create_token(name: str, c: ContextDep, body: WorkerTokenCreate | None = None) -> WorkerTokenCreated:
    body = body or WorkerTokenCreate()
    return workers.issue_token(c, name=name, label=body.label)


@people.get("/worker-tokens", dependencies=[Depends(require("read"))])
def list_tokens(name: str, c: ContextDep) -> list[WorkerTokenPublic]:
    return workers.list_tokens(c, name=name)


@people.delete("/worker-tokens/{token_id}", name="workers.token_revoke", dependencies=[Depends(require("update"))])
def revoke_token(name: str, token_id: str, c: ContextDep) -> WorkerTokenPublic:
    return workers.revoke_token(c, name=name, token_id=token_id)


@people.get("/workers", dependencies=[Depends(require("read"))])
def list_hosts(name: str, c: ContextDep) -> list[WorkerHostPublic]:
    return workers.list_hosts(c, name=name)


@hosts.post("/workers/heartbeat", name="workers.heartbeat")
def heartbeat(body: Heartbeat, request: Request, caller: WorkerCaller, c: ContextDep) -> HeartbeatAccepted:
    address = request.client.host if request.client else "unknown"
    return workers.record_heartbeat(c, caller=caller, report=body, address=address)


@hosts.get("/worker-bundle", name="workers.bundle")
def get_bundle(request: Request, response: Response, caller: WorkerCaller, c: ContextDep) -> WorkerBundle:
    # loopback addresses become the name the host reached us by (the Host header)
    bundle = worker_bundle.worker_bundle(c, caller=caller, host=request.url.hostname or "127.0.0.1")
    response.headers["Cache-Control"] = "no-store"  # it holds the environment's secrets
    return bundle


@hosts.get("/worker-bundle/dags.tar.gz", name="workers.bundle_dags", response_class=FileResponse)
def get_dags(caller: WorkerCaller, c: ContextDep) -> FileResponse:
    return _archive(worker_bundle.bundle_archive(c, caller=caller, part="dags"))


@hosts.get("/worker-bundle/plugins.tar.gz", name="workers.bundle_plugins", response_class=FileResponse)
def get_plugins(caller: WorkerCaller, c: ContextDep) -> FileResponse:
    return _archive(worker_bundle.bundle_archive(c, caller=caller, part="plugins"))


def _archive(path) -> FileResponse:
    return FileResponse(path, media_type="application/gzip", background=BackgroundTask(os.unlink, path))


router = APIRouter()
router.include_router(people)
router.include_router(hosts)
