"""Create and update an environment from the form. An update is planned first (the dry run:
what restarts, the package diff) and applied only from the plan's page; a form changed after its
plan is planned again rather than applied unseen."""
from __future__ import annotations

import hashlib
import json

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from hangar.api.auth import require
from hangar.api.console import spec_form
from hangar.api.console.pages.common import console_router
from hangar.api.console.render import page
from hangar.api.deps import ContextDep
from hangar.domain import environments, queries
from hangar.errors import EnvironmentNotFound, HangarError

router = console_router()
FORM_CONTEXT = {"choices": spec_form.CHOICES, "levels": spec_form.LEVELS, "log_modules": spec_form.LOG_MODULES}
# form fields that are not the spec's
NOT_SPEC = {"csrf", "action", "planned"}


def _form_values(form) -> dict[str, str]:
    return {k: v for k, v in form.items() if isinstance(v, str) and k not in NOT_SPEC}


def _placed(exc: HangarError) -> dict[str, str]:
    return {spec_form.field_for_message(exc.message): exc.message}


@router.get("/new", name="console.create_form", dependencies=[Depends(require("admin"))])
def create_form(request: Request) -> Response:
    return page(request, "create.html", title="Create an environment", section="environments", creating=True,
                values=spec_form.values_of(None), errors={}, **FORM_CONTEXT)


@router.post("/new", name="console.environments.create", dependencies=[Depends(require("admin"))])
async def create(request: Request, c: ContextDep) -> Response:
    values = _form_values(await request.form())
    body, errors = spec_form.create_request(values)
    if body is not None:
        try:
            created = await run_in_threadpool(environments.create_environment, c, request=body)
            return RedirectResponse(f"/console/environments/{created.name}", status_code=303)
        except HangarError as exc:
            errors = _placed(exc)
    return page(request, "create.html", status_code=400, title="Create an environment", section="environments",
                creating=True, values=values, errors=errors, **FORM_CONTEXT)


def _digest(values: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:32]


@router.get("/environments/{name}/update", name="console.update_form", dependencies=[Depends(require("update"))])
def update_form(request: Request, name: str, c: ContextDep) -> Response:
    env = queries.get_environment(c, name=name)
    return page(request, "update.html", title=f"Update {name}", section="environments", name=name, creating=False,
                values=spec_form.values_of(env.spec), errors={}, plan=None, planned="", **FORM_CONTEXT)


@router.post("/environments/{name}/update", name="console.environments.update", dependencies=[Depends(require("update"))])
async def update(request: Request, name: str, c: ContextDep) -> Response:
    form = await request.form()
    values = _form_values(form)
    env = await run_in_threadpool(queries.get_environment, c, name=name)
    body, errors = spec_form.update_request(values, env.spec)
    plan = None
    if body is not None:
        try:
            if form.get("action") == "apply" and form.get("planned") == _digest(values):
                await run_in_threadpool(environments.update_environment, c, name=name, request=body)
                return RedirectResponse(f"/console/environments/{name}", status_code=303)
            plan = await run_in_threadpool(environments.plan_update, c, name=name, request=body)
        except EnvironmentNotFound:
            raise
        except HangarError as exc:
            errors = _placed(exc)
    return page(request, "update.html", status_code=400 if errors else 200, title=f"Update {name}",
                section="environments", name=name, creating=False, values=values, errors=errors, plan=plan,
                planned=_digest(values) if plan else "", **FORM_CONTEXT)
