"""An environment's overview (status with its reason and the running operation's progress, the
spec, components, events), opening its Airflow UI, deleting it, and its revision history with
rollback. The live parts are fragments the page polls; once the environment is gone they say so
and answer 286, which stops htmx polling."""
from __future__ import annotations

from fastapi import Depends, Form, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response
from typing import Annotated

from hangar.api.auth import require
from hangar.api.console.pages.common import STOP_POLLING, console_router
from hangar.api.console.pages.environments import health
from hangar.api.console.render import error_page, page
from hangar.api.deps import ContextDep, LoginCaller, Reader
from hangar.domain import disclosure, environments, queries
from hangar.errors import EnvironmentNotFound, ValidationFailed

router = console_router()
EVENTS_SHOWN = 100


def _gone(request: Request, exc: EnvironmentNotFound) -> Response:
    return error_page(request, status_code=STOP_POLLING, title="Gone",
                      message=f"{exc.message}: it was deleted while this page was open.")


def _status_context(c, caller, name: str) -> dict:
    env = disclosure.environment_for(queries.get_environment(c, name=name), caller.role)
    progress = queries.operation_progress(c, name=name)
    return {"env": env, "health": health(env), "progress": progress}


@router.get("/environments/{name}", name="console.environment")
def overview(request: Request, name: str, c: ContextDep, caller: Reader) -> Response:
    context = _status_context(c, caller, name)
    events = disclosure.events_for(queries.list_events(c, name=name, newest=EVENTS_SHOWN), caller.role)
    return page(request, "overview.html", title=name, section="environments", name=name,
                events=list(reversed(events)), **context)


@router.get("/environments/{name}/status", name="console.environment_status")
def status_fragment(request: Request, name: str, c: ContextDep, caller: Reader) -> Response:
    try:
        context = _status_context(c, caller, name)
    except EnvironmentNotFound as exc:
        return _gone(request, exc)
    return page(request, "_status.html", name=name, **context)


@router.get("/environments/{name}/events", name="console.environment_events")
def events_fragment(request: Request, name: str, c: ContextDep, caller: Reader) -> Response:
    try:
        events = disclosure.events_for(queries.list_events(c, name=name, newest=EVENTS_SHOWN), caller.role)
    except EnvironmentNotFound as exc:
        return _gone(request, exc)
    return page(request, "_events.html", events=list(reversed(events)))


@router.post("/environments/{name}/open", name="console.environments.open")
def open_airflow(name: str, c: ContextDep, caller: LoginCaller) -> Response:
    """Into the environment's Airflow UI as the caller's role, by MWAA's web login: a 60-second
    token in the URL's fragment, which browsers never send to a server or a log."""
    token = environments.environment_token(c, name=name, principal=caller, valid_for=60, purpose="web")
    if not token.webserver_url:
        raise ValidationFailed(f"{name} has no web server address yet")
    return RedirectResponse(f"{token.webserver_url}/aws_mwaa/aws-console-sso?login=true#{token.token}", status_code=303)


@router.post("/environments/{name}/delete", name="console.environments.delete", dependencies=[Depends(require("admin"))])
def delete(request: Request, name: str, c: ContextDep, confirm: Annotated[str, Form(max_length=200)] = "") -> Response:
    if confirm.strip() != name:
        raise ValidationFailed(f"type the environment's name, {name}, to confirm the delete; nothing was deleted")
    environments.delete_environment(c, name=name)
    return RedirectResponse(f"/console/environments/{name}", status_code=303)


@router.get("/environments/{name}/history", name="console.history")
def history(request: Request, name: str, c: ContextDep, caller: Reader) -> Response:
    revisions = disclosure.history_for(queries.list_history(c, name=name), caller.role)
    return page(request, "history.html", title=f"{name} history", section="environments", name=name,
                revisions=list(reversed(revisions)))


@router.post("/environments/{name}/rollback", name="console.environments.rollback", dependencies=[Depends(require("update"))])
async def rollback(request: Request, name: str, c: ContextDep) -> Response:
    form = await request.form()
    to = str(form.get("to") or "")
    if not to.isdigit():
        raise ValidationFailed(f"revision {to!r} is not a revision number")
    await run_in_threadpool(environments.rollback_environment, c, name=name, to=int(to),
                            allow_downgrade=form.get("allow_downgrade") == "on")
    return RedirectResponse(f"/console/environments/{name}", status_code=303)
