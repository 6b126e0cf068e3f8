"""GET /metrics: the control plane's series in Prometheus' text format, for any caller with a
key of any role, or a scrape token (an access key of role Scrape, which may read nothing else)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from hangar.api.auth import principal, require
from hangar.api.deps import ContextDep
from hangar.domain.metric_history import metric_history
from hangar.schemas.metrics import MetricSeriesPublic

router = APIRouter(dependencies=[Depends(principal)], tags=["metrics"])


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(require("metrics"))])
def metrics(c: ContextDep) -> Response:
    return Response(c.telemetry.exposition(), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/environments/{name}/metrics", dependencies=[Depends(require("read"))])
def history(
    name: str, c: ContextDep,
    names: list[str] = Query([], description="metric names (repeat, or separate with commas); all when left out"),
    minutes: float = Query(60, gt=0, le=60 * 24 * 366, allow_inf_nan=False),
) -> list[MetricSeriesPublic]:
    """The environment's series over the last `minutes`, sampled every metrics_sample_seconds."""
    return metric_history(c, name=name, names=[n for item in names for n in item.split(",")], minutes=minutes)
