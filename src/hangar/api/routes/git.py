"""Native routes for git credentials (Admin only: they open private repositories)."""
from __future__ import annotations

from fastapi import APIRouter, Depends

from hangar.api.auth import require
from hangar.api.deps import ContextDep
from hangar.domain import git_credentials
from hangar.schemas.git_credentials import GitCredentialCreate, GitCredentialPublic

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require("admin"))], tags=["git"])


@router.post("/git-credentials", status_code=201, name="git_credentials.create")
def create(body: GitCredentialCreate, c: ContextDep) -> GitCredentialPublic:
    return git_credentials.create_credential(c, request=body)


@router.get("/git-credentials")
def list_(c: ContextDep) -> list[GitCredentialPublic]:
    return git_credentials.list_credentials(c)


@router.delete("/git-credentials/{name}", status_code=204, name="git_credentials.delete")
def delete(name: str, c: ContextDep) -> None:
    git_credentials.delete_credential(c, name=name)
