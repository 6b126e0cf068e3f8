"""An environment's recent DAG runs, their task instances and each try's log, read through the
environment's own Airflow REST API with the caller's role (as `hangar env task-logs` does): Airflow
finds a log wherever its task handler put it, a joined host's worker included."""
from __future__ import annotations

from fastapi import Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from urllib.parse import quote

from hangar.api.console.pages.common import console_router
from hangar.api.console.render import error_page, page
from hangar.api.deps import ContextDep, LoginCaller
from hangar.domain import task_logs
from hangar.domain.rest_api import call_airflow
from hangar.errors import RestApiClientError

router = console_router()
RUNS_SHOWN = 25


def _airflow_refused(request: Request, exc: RestApiClientError) -> Response:
    detail = exc.payload.get("detail") if isinstance(exc.payload, dict) else None
    return error_page(request, status_code=502 if exc.status >= 500 else 400,
                      message=f"{exc.message}: {detail or exc.payload}")


@router.get("/environments/{name}/runs", name="console.runs")
async def runs(request: Request, name: str, c: ContextDep, caller: LoginCaller) -> Response:
    try:
        _, payload = await run_in_threadpool(call_airflow, c, name=name, principal=caller, method="GET",
                                             path="/dags/~/dagRuns", query={"order_by": "-start_date",
                                                                             "limit": RUNS_SHOWN})
    except RestApiClientError as exc:
        return _airflow_refused(request, exc)
    return page(request, "runs.html", title=f"{name} runs", section="environments", name=name,
                runs=payload.get("dag_runs", []) if isinstance(payload, dict) else [], quote=quote)


@router.get("/environments/{name}/runs/tasks", name="console.run_tasks")
async def run_tasks(request: Request, name: str, c: ContextDep, caller: LoginCaller,
                    dag_id: str = Query(max_length=250), run_id: str = Query(max_length=250)) -> Response:
    path = f"/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}/taskInstances"
    try:
        _, payload = await run_in_threadpool(call_airflow, c, name=name, principal=caller, method="GET", path=path)
    except RestApiClientError as exc:
        return _airflow_refused(request, exc)
    return page(request, "run_tasks.html", title=f"{dag_id} {run_id}", section="environments", name=name,
                dag_id=dag_id, run_id=run_id, quote=quote,
                tasks=payload.get("task_instances", []) if isinstance(payload, dict) else [])


@router.get("/environments/{name}/runs/log", name="console.task_log")
async def task_log(request: Request, name: str, c: ContextDep, caller: LoginCaller,
                   dag_id: str = Query(max_length=250), run_id: str = Query(max_length=250),
                   task_id: str = Query(max_length=250), try_number: int | None = Query(None, alias="try", ge=1),
                   map_index: int = Query(-1, ge=-1)) -> Response:
    try:
        tried, text = await run_in_threadpool(task_logs.read_task_log, c, name=name, principal=caller, dag_id=dag_id,
                                              run_id=run_id, task_id=task_id, try_number=try_number,
                                              map_index=map_index)
    except RestApiClientError as exc:
        return _airflow_refused(request, exc)
    return page(request, "task_log.html", title=f"{task_id} log", section="environments", name=name,
                dag_id=dag_id, run_id=run_id, task_id=task_id, try_number=tried, text=text, quote=quote)
