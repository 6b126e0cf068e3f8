"""Native routes for environments under /api/v1."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict

from hangar.api.auth import principal, require
from hangar.context import Context
from hangar.domain import disclosure, environments
from hangar.domain.access import Principal
from hangar.domain.changes import ChangePlan
from hangar.schemas.public import WorkerSamplePublic, EnvironmentPublic, EventPublic, RevisionPublic, TokenPublic
from hangar.schemas.spec import EnvironmentCreate, EnvironmentUpdate

router = APIRouter(prefix="/api/v1", dependencies=[Depends(principal)], tags=["environments"])


def ctx(request: Request) -> Context:
    return request.app.state.ctx


@router.post("/environments", status_code=201, name="environments.create", dependencies=[Depends(require("admin"))])
def create(body: EnvironmentCreate, c: Context = Depends(ctx)) -> EnvironmentPublic:
    return environments.create_environment(c, request=body)


@router.get("/environments")
def list_(c: Context = Depends(ctx), caller: Principal = Depends(require("read"))) -> list[EnvironmentPublic]:
    return [disclosure.environment_for(env, caller.role) for env in environments.list_environments(c)]


@router.get("/environments/{name}")
def get(name: str, c: Context = Depends(ctx), caller: Principal = Depends(require("read"))) -> EnvironmentPublic:
    return disclosure.environment_for(environments.get_environment(c, name=name), caller.role)


@router.patch("/environments/{name}", name="environments.update", dependencies=[Depends(require("update"))])
def update(name: str, body: EnvironmentUpdate, c: Context = Depends(ctx)) -> EnvironmentPublic:
    return environments.update_environment(c, name=name, request=body)


@router.post("/environments/{name}/plan", dependencies=[Depends(require("update"))])
def plan(name: str, body: EnvironmentUpdate, c: Context = Depends(ctx)) -> ChangePlan:
    """What PATCH with this body would do (a dry run): nothing is changed."""
    return environments.plan_update(c, name=name, request=body)


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: int
    allow_downgrade: bool = False


@router.post("/environments/{name}/rollback", name="environments.rollback", dependencies=[Depends(require("update"))])
def rollback(name: str, body: RollbackRequest, c: Context = Depends(ctx)) -> EnvironmentPublic:
    return environments.rollback_environment(c, name=name, to=body.to, allow_downgrade=body.allow_downgrade)


@router.get("/environments/{name}/history")
def history(name: str, c: Context = Depends(ctx), caller: Principal = Depends(require("read"))) -> list[RevisionPublic]:
    return disclosure.history_for(environments.list_history(c, name=name), caller.role)


@router.delete("/environments/{name}", status_code=202, name="environments.delete", dependencies=[Depends(require("admin"))])
def delete(name: str, c: Context = Depends(ctx)) -> EnvironmentPublic:
    return environments.delete_environment(c, name=name)


@router.get("/environments/{name}/worker-samples", dependencies=[Depends(require("read"))])
def worker_samples(
    name: str, minutes: float = Query(60, gt=0, le=24 * 60, allow_inf_nan=False), c: Context = Depends(ctx)
) -> list[WorkerSamplePublic]:
    return environments.worker_history(c, name=name, minutes=minutes)


@router.get("/environments/{name}/events")
def events(name: str, c: Context = Depends(ctx), caller: Principal = Depends(require("read"))) -> list[EventPublic]:
    return disclosure.events_for(environments.list_events(c, name=name), caller.role)


@router.post("/environments/{name}/token", name="environments.token")
def token(name: str, c: Context = Depends(ctx), caller: Principal = Depends(require("login"))) -> TokenPublic:
    return environments.environment_token(c, name=name, principal=caller)
