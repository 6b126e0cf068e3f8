"""The environments page: every environment with its status, health and workers, live."""
from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from hangar.api.console.pages.common import console_router
from hangar.api.console.render import page
from hangar.api.deps import ContextDep, Reader
from hangar.domain import disclosure, queries
from hangar.schemas.public import EnvironmentPublic

router = console_router()


def health(env: EnvironmentPublic) -> tuple[str, str]:
    """(word, detail): how the environment's processes are, from its components' states."""
    if env.status in {"DELETED", "DELETING"}:
        return "none", ""
    if not env.components:
        return "unknown", "no processes yet"
    down = [f"{c.name} {c.state}" for c in env.components if c.state != "RUNNING"]
    if env.status == "UNAVAILABLE":
        return "unhealthy", env.status_reason or ", ".join(down)
    if down:
        return "degraded", ", ".join(down)
    return "healthy", f"{len(env.components)} processes running"


def _rows(c, caller) -> list[tuple[EnvironmentPublic, tuple[str, str]]]:
    found = [disclosure.environment_for(env, caller.role) for env in queries.list_environments(c)]
    return [(env, health(env)) for env in sorted(found, key=lambda e: e.name)]


@router.get("", name="console.environments")
def environments_page(request: Request, c: ContextDep, caller: Reader) -> Response:
    return page(request, "environments.html", title="Environments", section="environments", rows=_rows(c, caller))


@router.get("/environments/rows", name="console.environment_rows")
def environment_rows(request: Request, c: ContextDep, caller: Reader) -> Response:
    """The table's body, which the page reloads every few seconds."""
    return page(request, "_environment_rows.html", rows=_rows(c, caller))
