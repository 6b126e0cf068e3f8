"""Authentication and role checks for the native API.

Bearer credentials are either the bootstrap admin key (HANGAR_HOME/admin.key,
written 0600 on first start and read by the CLI) or an access key as
`<access_key_id>:<secret_access_key>`. Keys are compared in constant time and
never logged. Each route declares the action it performs; `require` turns that
into a role check.
"""
from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hangar.crypto import write_private
from hangar.domain.access import Principal, authenticate_bearer
from hangar.errors import Unauthorized

bearer = HTTPBearer(auto_error=False, description="the admin key from HANGAR_HOME/admin.key, or ID:SECRET of an access key")


def load_or_create_admin_key(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    key = "hgr_" + secrets.token_urlsafe(32)
    write_private(path, key.encode())
    return key


async def principal(request: Request) -> Principal:
    admitted = getattr(request.state, "principal", None)  # admission authenticated it from the headers
    if admitted is not None:
        return admitted
    credentials: HTTPAuthorizationCredentials | None = await bearer(request)
    if credentials is None:
        raise Unauthorized("a valid API key is required (Authorization: Bearer <key from HANGAR_HOME/admin.key>)")
    found = authenticate_bearer(request.app.state.ctx, token=credentials.credentials,
                                admin_key=request.app.state.admin_key)
    request.state.principal = found
    return found


def require(action: str):
    async def check(request: Request, caller: Principal = Depends(principal)) -> Principal:
        caller.require(action)
        return caller

    return check
