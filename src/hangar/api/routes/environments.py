"""Native routes for environments under /api/v1."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from hangar.api.auth import principal, require
from hangar.api.deps import ContextDep, LoginCaller, Reader
from hangar.domain import disclosure, environments, queries
from hangar.domain.changes import ChangePlan
from hangar.schemas.environments import RollbackRequest
from hangar.schemas.public import WorkerSamplePublic, EnvironmentPublic, EventPublic, RevisionPublic, TokenPublic
from hangar.schemas.spec import EnvironmentCreate, EnvironmentUpdate

router = APIRouter(prefix="/api/v1", dependencies=[Depends(principal)], tags=["environments"])


@router.post("/environments", status_code=201, name="environments.create", dependencies=[Depends(require("admin"))])
def create(body: EnvironmentCreate, c: ContextDep) -> EnvironmentPublic:
    return environments.create_environment(c, request=body)


@router.get("/environments")
def list_(c: ContextDep, caller: Reader) -> list[EnvironmentPublic]:
    return [disclosure.environment_for(env, caller.role) for env in queries.list_environments(c)]


@router.get("/environments/{name}")
def get(name: str, c: ContextDep, caller: Reader) -> EnvironmentPublic:
    return disclosure.environment_for(queries.get_environment(c, name=name), caller.role)


@router.patch("/environments/{name}", name="environments.update", dependencies=[Depends(require("update"))])
def update(name: str, body: EnvironmentUpdate, c: ContextDep) -> EnvironmentPublic:
    return environments.update_environment(c, name=name, request=body)


@router.post("/environments/{name}/plan", dependencies=[Depends(require("update"))])
def plan(name: str, body: EnvironmentUpdate, c: ContextDep) -> ChangePlan:
    """What PATCH with this body would do (a dry run): nothing is changed."""
    return environments.plan_update(c, name=name, request=body)


@router.post("/environments/{name}/rollback", name="environments.rollback", dependencies=[Depends(require("update"))])
def rollback(name: str, body: RollbackRequest, c: ContextDep) -> EnvironmentPublic:
    return environments.rollback_environment(c, name=name, to=body.to, allow_downgrade=body.allow_downgrade)


@router.get("/environments/{name}/history")
def history(name: str, c: ContextDep, caller: Reader) -> list[RevisionPublic]:
    return disclosure.history_for(queries.list_history(c, name=name), caller.role)


@router.delete("/environments/{name}", status_code=202, name="environments.delete", dependencies=[Depends(require("admin"))])
def delete(name: str, c: ContextDep) -> EnvironmentPublic:
    return environments.delete_environment(c, name=name)


@router.get("/environments/{name}/worker-samples", dependencies=[Depends(require("read"))])
def worker_samples(
    name: str, c: ContextDep, minutes: float = Query(60, gt=0, le=24 * 60, allow_inf_nan=False)
) -> list[WorkerSamplePublic]:
    return queries.worker_history(c, name=name, minutes=minutes)


@router.get("/environments/{name}/events")
def events(name: str, c: ContextDep, caller: Reader) -> list[EventPublic]:
    return disclosure.events_for(queries.list_events(c, name=name), caller.role)


@router.post("/environments/{name}/token", name="environments.token")
def token(name: str, c: ContextDep, caller: LoginCaller) -> TokenPublic:
    return environments.environment_token(c, name=name, principal=caller)
