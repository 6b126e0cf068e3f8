"""A task instance's log, read through the environment's own Airflow REST API.

Airflow finds the log wherever its task handler put it (the environment's log folder, which the
control plane's workers share, or a worker's log server), so Hangar reads what Airflow's UI
shows, with the caller's role. Without a try number the task instance's latest try is read.
Airflow 3 answers structured entries ({"timestamp", "level", "event", ...}); Airflow 2 text.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

from hangar.context import Context
from hangar.domain.access import Principal
from hangar.domain.rest_api import call_airflow
from hangar.errors import ValidationFailed


def _entry_text(entry: Any) -> str:
    if not isinstance(entry, dict):
        return str(entry)
    head = " ".join(str(entry[k]) for k in ("timestamp", "level") if entry.get(k))
    extra = " ".join(f"{k}={v}" for k, v in entry.items() if k not in ("timestamp", "level", "event", "logger"))
    text = f"{head} {entry.get('event', '')}".strip() if head else str(entry.get("event", ""))
    return f"{text} {extra}".rstrip() if extra else text


def _text(content: Any) -> str:
    """Airflow's log content as text: a list of entries (3.x) or a string (2.x)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_entry_text(entry) for entry in content)
    return ""


def read_task_log(ctx: Context, *, name: str, principal: Principal, dag_id: str, run_id: str, task_id: str,
                  try_number: int | None = None, map_index: int = -1) -> tuple[int, str]:
    """(the try read, its log as text)."""
    base = f"/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}/taskInstances/{quote(task_id, safe='')}"
    if try_number is None:
        instance = base + (f"/{map_index}" if map_index >= 0 else "")
        _, ti = call_airflow(ctx, name=name, principal=principal, method="GET", path=instance)
        try_number = int(ti.get("try_number") or 0) if isinstance(ti, dict) else 0
        if try_number < 1:
            raise ValidationFailed(f"task {task_id!r} of run {run_id!r} of DAG {dag_id!r} has not run yet "
                                   f"(its state: {ti.get('state') if isinstance(ti, dict) else None})")
    elif try_number < 1:
        raise ValidationFailed(f"--try {try_number}: tries are numbered from 1")
    query: dict[str, Any] = {"full_content": "true"}
    if map_index >= 0:
        query["map_index"] = map_index
    _, payload = call_airflow(ctx, name=name, principal=principal, method="GET",
                              path=f"{base}/logs/{try_number}", query=query)
    return try_number, _text(payload.get("content") if isinstance(payload, dict) else payload)
