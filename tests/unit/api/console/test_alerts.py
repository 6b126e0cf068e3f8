"""The console's alerts page over a real store: the rules as the domain shows them, creating one
(Op or higher, like the API), a test notice and its delivery, deleting, the history; refusals by
role and without the CSRF token change nothing, and a form's errors show next to their fields."""
from __future__ import annotations

from pathlib import Path

import pytest

from hangar.domain import alerts, environments
from hangar.domain.access import Role
from hangar.schemas.alerts import AlertCreate
from hangar.schemas.spec import EnvironmentCreate
from tests.unit.api.console.conftest import csrf
from tests.unit.api.console.pagecheck import assert_labelled, field_error, invalid_fields, post_forms

HOOK = "https://hooks.example.com/services/T000/B000/very-secret-path"


@pytest.fixture
def env(ctx, tmp_path: Path) -> str:
    dags = tmp_path / "dags"
    dags.mkdir()
    environments.create_environment(ctx, request=EnvironmentCreate(name="sales", dags=str(dags)))
    return "sales"


@pytest.fixture
def rule(ctx, env) -> str:
    alerts.create_alert(ctx, request=AlertCreate(name="sales-down", environment=env, event="status_changed",
                                                 slack_webhook=HOOK))
    return "sales-down"


def form(client, **fields) -> dict:
    return {"csrf": csrf(client, "/console/alerts"), "name": "late", "event": "task_queued_too_long",
            "environment": "sales", "threshold": "15", "webhook": "https://ops.example.com/hook/abc", **fields}


def test_a_viewer_sees_the_rules_and_history_but_no_controls(signed_in, ctx, rule):
    alerts.test_alert(ctx, name=rule)
    client = signed_in(Role.Viewer)
    answer = client.get("/console/alerts")
    assert answer.status_code == 200
    assert 'href="/console/alerts" aria-current="page"' in answer.text
    assert 'data-alert="sales-down"' in answer.text and "status_changed" in answer.text
    assert "https://hooks.example.com/…" in answer.text and "very-secret-path" not in answer.text
    assert "a test of alert" in answer.text  # the history
    assert [action for action in post_forms(answer.text) if action != "/console/sign-out"] == []
    rows = client.get("/console/alerts/history")
    assert rows.status_code == 200 and 'data-delivery="' in rows.text


def test_an_op_creates_a_rule_and_sees_it(signed_in, ctx, env):
    client = signed_in(Role.Op)
    page = client.get("/console/alerts")
    assert_labelled(page.text)
    for field in ("name", "environment", "all_environments", "event", "threshold", "dag", "webhook", "secret",
                  "slack_webhook", "email"):
        assert f'name="{field}"' in page.text, field
    made = client.post("/console/alerts", data=form(client, secret="s3cret-enough", dag=""), follow_redirects=False)
    assert made.status_code == 303 and made.headers["location"] == "/console/alerts?created=late"
    [created] = alerts.list_alerts(ctx)
    assert (created.name, created.environment, created.event, created.threshold, created.delivery, created.signed) == (
        "late", "sales", "task_queued_too_long", 15.0, "webhook", True)
    shown = client.get(made.headers["location"]).text
    assert "Alert late created." in shown and "15 minutes" in shown and "s3cret-enough" not in shown

    every = client.post("/console/alerts", data=form(client, name="any-failure", environment="", all_environments="on",
                                                     event="dag_run_failed", threshold="", dag="etl", webhook="",
                                                     email="ops@example.com"), follow_redirects=False)
    assert every.status_code == 303
    row = {a.name: a for a in alerts.list_alerts(ctx)}["any-failure"]
    assert (row.environment, row.dag, row.delivery, row.target) == (None, "etl", "email", "ops@example.com")


@pytest.mark.parametrize("fields, field_id, words", [
    ({"name": "bad name!"}, "alert-name", "letters, digits"),
    ({"threshold": "soon"}, "alert-threshold", "enter a number"),
    ({"threshold": "-3"}, "alert-threshold", "more than 0"),
    ({"event": "status_changed"}, "alert-threshold", "takes no threshold"),
    ({"environment": ""}, "alert-environment", "name one environment"),
    ({"all_environments": "on"}, "alert-environment", "name one environment"),
    ({"dag": "etl"}, "alert-dag", "dag_run_failed only"),
    ({"webhook": "ftp://x"}, "alert-webhook", "not an http"),
    ({"webhook": "", "email": "nobody"}, "alert-email", "not an email address"),
    ({"secret": "short"}, "alert-secret", "at least 8"),
    ({"webhook": "", "secret": "long-enough-secret", "email": "a@b.c"}, "alert-secret", "webhook only"),
    ({"environment": "nowhere"}, "alert-environment", "nowhere"),
])
def test_invalid_fields_are_shown_next_to_the_field_and_nothing_is_created(signed_in, ctx, env, fields, field_id, words):
    client = signed_in(Role.Op)
    answer = client.post("/console/alerts", data=form(client, **fields))
    assert answer.status_code == 400
    assert words in field_error(answer.text, field_id)
    assert alerts.list_alerts(ctx) == []
    if "name" not in fields:
        assert 'value="late"' in answer.text  # what was entered is kept
    assert_labelled(answer.text)


def test_two_deliveries_mark_each_delivery_field_and_secrets_are_not_echoed(signed_in, ctx, env):
    client = signed_in(Role.Op)
    answer = client.post("/console/alerts", data=form(client, slack_webhook=HOOK, secret="another-secret"))
    assert answer.status_code == 400
    assert {"alert-webhook", "alert-slack", "alert-email"} <= invalid_fields(answer.text)
    assert "exactly one delivery" in field_error(answer.text, "alert-slack")
    assert "very-secret-path" not in answer.text and "another-secret" not in answer.text
    assert 'value="https://ops.example.com/hook/abc"' in answer.text
    assert alerts.list_alerts(ctx) == []


def test_a_name_taken_is_said_at_the_name(signed_in, ctx, rule):
    client = signed_in(Role.Op)
    answer = client.post("/console/alerts", data=form(client, name=rule))
    assert answer.status_code == 409 and "already exists" in field_error(answer.text, "alert-name")
    assert len(alerts.list_alerts(ctx)) == 1


def test_send_test_shows_its_delivery_and_follows_it(signed_in, ctx, rule):
    client = signed_in(Role.Op)
    page = client.get("/console/alerts").text
    assert f'action="/console/alerts/{rule}/test"' in page and f'action="/console/alerts/{rule}/delete"' in page
    token = csrf(client, "/console/alerts")
    fragment = client.post(f"/console/alerts/{rule}/test", data={"csrf": token}, headers={"HX-Request": "true"})
    assert fragment.status_code == 202
    [delivery] = alerts.alert_history(ctx, name=rule)
    assert delivery.kind == "test" and delivery.state == "pending"
    assert f"Test notice #{delivery.id} of {rule}" in fragment.text and "<html" not in fragment.text
    assert f'hx-get="/console/alerts/{rule}/deliveries/{delivery.id}"' in fragment.text  # asks again while pending
    followed = client.get(f"/console/alerts/{rule}/deliveries/{delivery.id}")
    assert followed.status_code == 200 and f"#{delivery.id}" in followed.text
    assert client.get(f"/console/alerts/{rule}/deliveries/99999").status_code == 404

    whole = client.post(f"/console/alerts/{rule}/test", data={"csrf": token})  # without htmx: the page, with the result
    assert whole.status_code == 202 and "<h1>Alerts</h1>" in whole.text and "Test notice #" in whole.text
    assert len(alerts.alert_history(ctx, name=rule)) == 2


def test_delete_removes_the_rule(signed_in, ctx, rule):
    client = signed_in(Role.Op)
    gone = client.post(f"/console/alerts/{rule}/delete", data={"csrf": csrf(client)}, follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == f"/console/alerts?deleted={rule}"
    assert alerts.list_alerts(ctx) == []
    htmx = client.post(f"/console/alerts/{rule}/delete", data={"csrf": csrf(client)}, headers={"HX-Request": "true"})
    assert htmx.status_code == 404 and "does not exist" in htmx.text and "<html" not in htmx.text


@pytest.mark.parametrize("role", [Role.Viewer, Role.User])
def test_a_role_below_op_is_refused_every_action_and_nothing_changes(signed_in, ctx, rule, role):
    client = signed_in(role)
    token = csrf(client)
    assert client.post("/console/alerts", data=form(client)).status_code == 403
    assert client.post(f"/console/alerts/{rule}/test", data={"csrf": token}).status_code == 403
    refused = client.post(f"/console/alerts/{rule}/delete", data={"csrf": token})
    assert refused.status_code == 403 and "needs Op or higher" in refused.text
    assert [a.name for a in alerts.list_alerts(ctx)] == [rule]
    assert alerts.alert_history(ctx) == []


def test_without_the_csrf_token_nothing_changes(signed_in, ctx, rule):
    client = signed_in(Role.Admin)
    data = form(client)
    del data["csrf"]
    assert client.post("/console/alerts", data=data).status_code == 403
    assert client.post(f"/console/alerts/{rule}/test", data={"csrf": "forged"}).status_code == 403
    refused = client.post(f"/console/alerts/{rule}/delete", data={})
    assert refused.status_code == 403 and "security token" in refused.text
    assert [a.name for a in alerts.list_alerts(ctx)] == [rule]
    assert alerts.alert_history(ctx) == []
