"""API-key authentication for the native API.

The admin key is written to HANGAR_HOME/admin.key (0600) on first start; the CLI
reads it from there. Keys are compared in constant time and never logged.
"""
from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hangar.crypto import write_private
from hangar.errors import Unauthorized

bearer = HTTPBearer(auto_error=False, description="the admin API key from HANGAR_HOME/admin.key")


def load_or_create_admin_key(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    key = "hgr_" + secrets.token_urlsafe(32)
    write_private(path, key.encode())
    return key


async def require_key(request: Request) -> None:
    credentials: HTTPAuthorizationCredentials | None = await bearer(request)
    expected: str = request.app.state.admin_key
    if credentials is None or not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise Unauthorized("a valid API key is required (Authorization: Bearer <key from HANGAR_HOME/admin.key>)")
