"""The alerts page: alert rules, creating and deleting them, a test notice per rule, and the
delivery history, live.

The roles are the API's (hangar.api.routes.alerts): reading needs Viewer, creating, deleting and
testing a rule need what an update needs (Op or higher).
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
from hangar.api.deps import ContextDep, Reader
from hangar.domain import alerts, queries
from hangar.errors import AlertAlreadyExists, AlertNotFound, EnvironmentNotFound
from hangar.schemas.alerts import THRESHOLDS, AlertCreate, AlertEvent

router = console_router()
update = [Depends(require("update"))]
Text = Annotated[str, Form(max_length=2048)]

FIELDS = ("name", "environment", "event", "threshold", "dag", "webhook", "secret", "slack_webhook", "email")
NOT_SHOWN_AGAIN = ("secret", "slack_webhook")  # secrets: typed again after an error, never echoed
# rules across fields (AlertCreate._shape), by the words their message starts with: the field it concerns
WHOLE = (("name one environment", "environment"), ("give exactly one delivery", "delivery"),
         ("a secret signs", "secret"), ("event", "threshold"), ("dag applies", "dag"))
MESSAGES = {
    "name:string_pattern_mismatch": "use 1 to 80 letters, digits, '.', '_' and '-', starting with a letter or digit",
    "secret:string_too_short": "use at least 8 characters",
    "secret:string_too_long": "use at most 512 characters",
}
HISTORY_LIMIT = 200


class DeliveryNotFound(AlertNotFound):
    code = "DELIVERY_NOT_FOUND"

    def __init__(self, name: str, delivery_id: int) -> None:
        super().__init__(name)
        self.message = f"alert {name!r} has no delivery {delivery_id} among its last {HISTORY_LIMIT}"


def _whole(message: str) -> str:
    return next((field for start, field in WHOLE if message.startswith(start)), "form")


def _events() -> list[tuple[str, str]]:
    return [(event.value, event.value + (f" (threshold in {THRESHOLDS[event][0]}, default {THRESHOLDS[event][1]:g})"
                                         if event in THRESHOLDS else "")) for event in AlertEvent]


def _alerts_page(request: Request, c, *, status_code: int = 200, values: dict | None = None,
                 errors: dict | None = None, **context) -> Response:
    return page(request, "alerts.html", status_code=status_code, title="Alerts", section="alerts",
                rules=alerts.list_alerts(c), history=alerts.alert_history(c, limit=HISTORY_LIMIT),
                env_options=[("", "(one environment, or tick All environments)")]
                + [(env, env) for env in sorted(e.name for e in queries.list_environments(c))], events=_events(),
                values=values or {}, errors=errors or {}, **context)


@router.get("/alerts", name="console.alerts")
def alerts_page(request: Request, c: ContextDep, caller: Reader, created: str | None = None,
                deleted: str | None = None) -> Response:
    return _alerts_page(request, c, created=created, deleted=deleted)


@router.get("/alerts/history", name="console.alert_history")
def history_rows(request: Request, c: ContextDep, caller: Reader) -> Response:
    """The delivery history's rows, which the page reloads every few seconds."""
    return page(request, "_alert_history_rows.html", history=alerts.alert_history(c, limit=HISTORY_LIMIT))


@router.post("/alerts", name="console.alert_create", dependencies=update)
def create(request: Request, c: ContextDep, name: Text = "", environment: Text = "", all_environments: Text = "",
           event: Text = "", threshold: Text = "", dag: Text = "", webhook: Text = "", secret: Text = "",
           slack_webhook: Text = "", email: Text = "") -> Response:
    given = {"name": name.strip(), "environment": environment, "event": event, "threshold": threshold, "dag": dag,
             "webhook": webhook, "secret": secret, "slack_webhook": slack_webhook, "email": email}
    values = {key: value for key, value in given.items() if key not in NOT_SHOWN_AGAIN}
    values["all_environments"] = bool(all_environments)
    try:
        body = AlertCreate(name=given["name"], all_environments=bool(all_environments),
                           **{key: blank_to_none(given[key]) for key in FIELDS if key != "name"})
    except ValidationError as exc:
        errors = field_errors(exc, whole=_whole, messages=MESSAGES)
        if "all_environments" in errors:
            errors.setdefault("environment", errors.pop("all_environments"))
        return _alerts_page(request, c, status_code=400, values=values, errors=errors)
    try:
        alerts.create_alert(c, request=body)
    except AlertAlreadyExists as exc:
        return _alerts_page(request, c, status_code=409, values=values, errors={"name": exc.message})
    except EnvironmentNotFound as exc:
        return _alerts_page(request, c, status_code=400, values=values, errors={"environment": exc.message})
    return done(request, f"/console/alerts?created={quote(body.name)}")


@router.post("/alerts/{name}/test", name="console.alert_test", dependencies=update)
def send_test(request: Request, name: str, c: ContextDep) -> Response:
    """A test notice to the rule's target; the answer shows its delivery, which follows it until sent."""
    delivery = alerts.test_alert(c, name=name)
    if request.headers.get("hx-request"):
        return page(request, "_alert_delivery.html", status_code=202, delivery=delivery)
    return _alerts_page(request, c, status_code=202, tested=delivery)


@router.get("/alerts/{name}/deliveries/{delivery_id}", name="console.alert_delivery")
def delivery(request: Request, name: str, delivery_id: int, c: ContextDep, caller: Reader) -> Response:
    found = next((d for d in alerts.alert_history(c, name=name, limit=HISTORY_LIMIT) if d.id == delivery_id), None)
    if found is None:
        raise DeliveryNotFound(name, delivery_id)
    return page(request, "_alert_delivery.html", delivery=found)


@router.post("/alerts/{name}/delete", name="console.alert_delete", dependencies=update)
def delete(request: Request, name: str, c: ContextDep) -> Response:
    alerts.delete_alert(c, name=name)
    return done(request, f"/console/alerts?deleted={quote(name)}")
