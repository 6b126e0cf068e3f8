"""Native routes for environments under /api/v1."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from hangar.api.auth import require_key
from hangar.context import Context
from hangar.domain import environments
from hangar.domain.spec import EnvironmentCreate, EnvironmentPublic, EnvironmentUpdate, EventPublic, TokenPublic

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_key)], tags=["environments"])


def ctx(request: Request) -> Context:
    return request.app.state.ctx


@router.post("/environments", status_code=201)
def create(body: EnvironmentCreate, c: Context = Depends(ctx)) -> EnvironmentPublic:
    return environments.create_environment(c, request=body)


@router.get("/environments")
def list_(c: Context = Depends(ctx)) -> list[EnvironmentPublic]:
    return environments.list_environments(c)


@router.get("/environments/{name}")
def get(name: str, c: Context = Depends(ctx)) -> EnvironmentPublic:
    return environments.get_environment(c, name=name)


@router.patch("/environments/{name}")
def update(name: str, body: EnvironmentUpdate, c: Context = Depends(ctx)) -> EnvironmentPublic:
    return environments.update_environment(c, name=name, request=body)


@router.delete("/environments/{name}", status_code=202)
def delete(name: str, c: Context = Depends(ctx)) -> EnvironmentPublic:
    return environments.delete_environment(c, name=name)


@router.get("/environments/{name}/events")
def events(name: str, c: Context = Depends(ctx)) -> list[EventPublic]:
    return environments.list_events(c, name=name)


@router.post("/environments/{name}/token")
def token(name: str, c: Context = Depends(ctx)) -> TokenPublic:
    return environments.environment_token(c, name=name)
