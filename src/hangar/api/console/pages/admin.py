"""The admin page (Admin only, as the API's access-key, key and audit routes): access keys, KMS-like
keys, and the audit log.

An access key's secret is shown once, in the answer to its creation; the store keeps it encrypted
and no page shows it again. Key ids travel in the path as `name`, as in the API's key routes, so the
audit log records them as the call's target.
"""
from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Form, Request
from pydantic import ValidationError
from starlette.responses import Response

from hangar.api.auth import require
from hangar.api.console.pages.common import console_router
from hangar.api.console.pages.forms import blank_to_none, done, field_errors
from hangar.api.console.render import page
from hangar.api.deps import ContextDep
from hangar.domain import access, audit, keys
from hangar.errors import ValidationFailed
from hangar.schemas.access import AccessKeyRequest
from hangar.schemas.keys import KeyCreate

router = console_router()
admin = [Depends(require("admin"))]
Text = Annotated[str, Form(max_length=10_000)]
AUDIT_LIMIT = 200
ROLES = [(role.name, role.name) for role in sorted(access.Role, reverse=True)]


def _admin_page(request: Request, c, *, status_code: int = 200, access_values: dict | None = None,
                access_errors: dict | None = None, key_values: dict | None = None, key_errors: dict | None = None,
                **context) -> Response:
    return page(request, "admin.html", status_code=status_code, title="Admin", section="admin",
                access_keys=access.list_access_keys(c), kms_keys=keys.list_keys(c),
                audit=audit.read_audit(c, limit=AUDIT_LIMIT), audit_limit=AUDIT_LIMIT, roles=ROLES,
                access_values=access_values or {"role": access.Role.Viewer.name}, access_errors=access_errors or {},
                key_values=key_values or {}, key_errors=key_errors or {}, **context)


@router.get("/admin", name="console.admin", dependencies=admin)
def admin_page(request: Request, c: ContextDep, revoked: str | None = None, key_created: str | None = None,
               rotated: str | None = None, rewrapped: int | None = None) -> Response:
    return _admin_page(request, c, revoked=revoked, key_created=key_created, rotated=rotated, rewrapped=rewrapped)


# --- access keys ---


@router.post("/admin/access-keys", name="console.access_key_create", dependencies=admin)
def create_access_key(request: Request, c: ContextDep, role: Text = "", description: Text = "") -> Response:
    values = {"role": role, "description": description}
    try:
        body = AccessKeyRequest(role=role, description=blank_to_none(description))
        parsed = access.Role.parse(body.role)
    except ValidationError as exc:
        return _admin_page(request, c, status_code=400, access_values=values, access_errors=field_errors(exc))
    except ValidationFailed as exc:
        return _admin_page(request, c, status_code=400, access_values=values, access_errors={"role": exc.message})
    created = access.create_access_key(c, role=parsed, description=body.description)
    # shown this once (page() answers with Cache-Control: no-store)
    return _admin_page(request, c, status_code=201, created=created)


@router.post("/admin/access-keys/{name}/revoke", name="console.access_key_revoke", dependencies=admin)
def revoke_access_key(request: Request, name: str, c: ContextDep) -> Response:
    access.revoke_access_key(c, access_key_id=name)
    return done(request, f"/console/admin?revoked={quote(name)}#access-keys")


# --- KMS-like keys ---


@router.post("/admin/keys", name="console.key_create", dependencies=admin)
def create_key(request: Request, c: ContextDep, alias: Text = "", description: Text = "") -> Response:
    values = {"alias": alias, "description": description}
    try:
        body = KeyCreate(alias=blank_to_none(alias), description=blank_to_none(description))
        created = keys.create_key(c, alias=body.alias, description=body.description)
    except ValidationError as exc:
        return _admin_page(request, c, status_code=400, key_values=values, key_errors=field_errors(exc))
    except ValidationFailed as exc:  # every rule create_key keeps is about the alias
        return _admin_page(request, c, status_code=400, key_values=values, key_errors={"alias": exc.message})
    return done(request, f"/console/admin?key_created={quote(created.key_id)}#kms-keys")


@router.post("/admin/keys/{name:path}/rotate", name="console.key_rotate", dependencies=admin)
def rotate_key(request: Request, name: str, c: ContextDep) -> Response:
    rotated = keys.rotate_key(c, key=name)
    return done(request, f"/console/admin?rotated={quote(rotated.key_id)}&rewrapped={rotated.rewrapped}#kms-keys")
