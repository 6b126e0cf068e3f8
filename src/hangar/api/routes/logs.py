"""Native routes for an environment's logs under /api/v1."""
from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from hangar.api.auth import principal, require
from hangar.api.deps import ContextDep, LoginCaller
from hangar.domain import logs, task_logs
from hangar.logstore.store import LogLine
from hangar.schemas.logs import LogLinePublic, TaskLogPublic

router = APIRouter(prefix="/api/v1", dependencies=[Depends(principal), Depends(require("read"))], tags=["logs"])


def _public(line: LogLine) -> LogLinePublic:
    return LogLinePublic(time=line.time, component=line.component, level=line.level, message=line.message)


@router.get("/environments/{name}/logs", response_model=list[LogLinePublic])
def read(
    name: str, c: ContextDep,
    component: list[str] = Query([], description="a component (worker-2) or a role (worker); repeatable"),
    level: str | None = Query(None, description="this level and above"),
    since: str | None = Query(None, description="10m, 2h, 7d or an ISO 8601 time"),
    until: str | None = Query(None), grep: str | None = Query(None, description="text the line holds"),
    limit: int = Query(1000, ge=0, le=100_000, description="the newest this many lines"),
    follow: bool = Query(False, description="go on with new lines as they come (newline-delimited JSON)"),
):
    page, query = logs.read_logs(c, name=name, components=component, level=level, since=since, until=until,
                                 grep=grep, limit=limit)
    if not follow:
        return [_public(line) for line in page.lines]

    def stream() -> Iterator[str]:
        for line in page.lines:
            yield _public(line).model_dump_json() + "\n"
        for batch in logs.follow_logs(c, name=name, query=query, cursor=page.cursor):
            for line in batch:
                yield _public(line).model_dump_json() + "\n"
    return StreamingResponse(stream(), media_type="application/x-ndjson")


@router.get("/environments/{name}/task-logs/{dag_id}/{run_id}/{task_id}")
def task_log(
    name: str, dag_id: str, run_id: str, task_id: str, c: ContextDep, caller: LoginCaller,
    try_number: int | None = Query(None, description="the try to read; the latest when left out"),
    map_index: int = Query(-1, ge=-1),
) -> TaskLogPublic:
    """A task instance's log as Airflow serves it, read with the caller's role."""
    tried, content = task_logs.read_task_log(c, name=name, principal=caller, dag_id=dag_id, run_id=run_id,
                                             task_id=task_id, try_number=try_number, map_index=map_index)
    return TaskLogPublic(dag_id=dag_id, run_id=run_id, task_id=task_id, try_number=tried, map_index=map_index,
                         content=content)
