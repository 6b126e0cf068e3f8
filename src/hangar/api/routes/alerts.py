"""Native routes for alert rules, their deliveries, and the SMTP server email alerts use."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response

from hangar.api.auth import principal, require
from hangar.api.deps import ContextDep
from hangar.domain import alerts
from hangar.schemas.alerts import AlertCreate, AlertPublic, DeliveryPublic, SmtpPublic, SmtpSettings

router = APIRouter(prefix="/api/v1", dependencies=[Depends(principal)], tags=["alerts"])


@router.post("/alerts", status_code=201, name="alerts.create", dependencies=[Depends(require("update"))])
def create(body: AlertCreate, c: ContextDep) -> AlertPublic:
    return alerts.create_alert(c, request=body)


@router.get("/alerts", dependencies=[Depends(require("read"))])
def list_(c: ContextDep) -> list[AlertPublic]:
    return alerts.list_alerts(c)


@router.get("/alerts/history", dependencies=[Depends(require("read"))])
def history(c: ContextDep, alert: str | None = Query(None), limit: int = Query(200, ge=1, le=5000)) -> list[DeliveryPublic]:
    return alerts.alert_history(c, name=alert, limit=limit)


@router.put("/alerts/smtp", name="alerts.smtp", dependencies=[Depends(require("admin"))])
def set_smtp(body: SmtpSettings, c: ContextDep) -> SmtpPublic:
    return alerts.set_smtp(c, settings=body)


@router.get("/alerts/smtp", dependencies=[Depends(require("admin"))])
def get_smtp(c: ContextDep) -> SmtpPublic | None:
    settings = alerts.get_smtp(c)
    return alerts.smtp_public(settings) if settings else None


@router.delete("/alerts/{name}", status_code=204, name="alerts.delete", dependencies=[Depends(require("update"))])
def delete(name: str, c: ContextDep) -> Response:
    alerts.delete_alert(c, name=name)
    return Response(status_code=204)


@router.post("/alerts/{name}/test", status_code=202, name="alerts.test", dependencies=[Depends(require("update"))])
def test(name: str, c: ContextDep) -> DeliveryPublic:
    return alerts.test_alert(c, name=name)
