"""The console's workers page over a real store: joined hosts and worker tokens, issuing a token
(Admin; shown once with the join command) and revoking one (Op or higher); refusals and a missing
CSRF token change nothing, a bad label is said at its field, and a missing environment is 404."""
from __future__ import annotations

import re

import pytest

from hangar import agent
from hangar.api.console.pages import snapshots as page_module
from hangar.domain import workers
from hangar.domain.access import Role
from hangar.schemas.workers import Heartbeat
from tests.unit.api.console.conftest import csrf
from tests.unit.api.console.pagecheck import assert_labelled, field_error, post_forms
from tests.unit.domain.test_workers import make_env

PAGE = "/console/environments/sales/workers"


@pytest.fixture
def sales(ctx, tmp_path) -> str:
    make_env(ctx, tmp_path, "sales")
    return "sales"


@pytest.fixture
def token(ctx, sales) -> str:
    created = workers.issue_token(ctx, name=sales, label="rack 4")
    caller = workers.verify_token(ctx, name=sales, token=created.token)
    workers.record_heartbeat(ctx, caller=caller, report=Heartbeat(hostname="edge-1", concurrency=8, running_tasks=2),
                             address="10.0.0.7")
    return created.id


def revoked(ctx) -> list[bool]:
    return [t.revoked for t in workers.list_tokens(ctx, name="sales")]


def test_a_viewer_sees_hosts_and_tokens_without_controls(signed_in, token):
    client = signed_in(Role.Viewer)
    answer = client.get(PAGE)
    assert answer.status_code == 200
    assert 'data-host="edge-1"' in answer.text and "10.0.0.7" in answer.text and "ACTIVE" in answer.text
    assert f'data-token="{token}"' in answer.text and "rack 4" in answer.text
    assert "hwt_" not in answer.text  # never a token
    assert 'href="/console/environments/sales/workers" aria-current="page"' in answer.text
    assert [action for action in post_forms(answer.text) if action != "/console/sign-out"] == []


def test_an_admin_issues_a_token_shown_once_with_the_join_command(signed_in, ctx, sales):
    client = signed_in(Role.Admin)
    page = client.get(PAGE).text
    assert_labelled(page)
    made = client.post(f"{PAGE}/tokens", data={"csrf": csrf(client), "label": "edge host"})
    assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
    [created] = workers.list_tokens(ctx, name="sales")
    assert created.label == "edge host" and not created.revoked
    secret = re.search(r'<div class="secret"[^>]*>(hwt_[^<]+)</div>', made.text)[1]
    assert workers.verify_token(ctx, name="sales", token=secret).token_id == created.id
    assert (f"export {agent.TOKEN_VARIABLE}={secret}\n"
            f"hangar worker join --url http://testserver --environment sales") in made.text
    again = client.get(PAGE).text
    assert secret not in again and "hwt_" not in again and created.id in again


def test_the_join_command_reads_the_token_where_the_agent_looks(ctx):
    assert page_module.TOKEN_VARIABLE == agent.TOKEN_VARIABLE


def test_a_label_too_long_is_said_at_its_field(signed_in, ctx, sales):
    client = signed_in(Role.Admin)
    answer = client.post(f"{PAGE}/tokens", data={"csrf": csrf(client), "label": "x" * 201})
    assert answer.status_code == 400 and "at most 200" in field_error(answer.text, "token-label")
    assert 'value="' + "x" * 201 + '"' in answer.text
    assert workers.list_tokens(ctx, name="sales") == []


def test_an_op_revokes_a_token(signed_in, ctx, token):
    client = signed_in(Role.Op)
    page = client.get(PAGE).text
    assert f"/tokens/{token}/revoke" in page and f'action="{PAGE}/tokens"' not in page  # issuing is Admin's
    done = client.post(f"{PAGE}/tokens/{token}/revoke", data={"csrf": csrf(client)}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"{PAGE}?revoked={token}"
    assert revoked(ctx) == [True]
    shown = client.get(done.headers["location"]).text
    assert f"Worker token {token} revoked" in shown and "REVOKED" in shown
    unknown = client.post(f"{PAGE}/tokens/wt_nope/revoke", data={"csrf": csrf(client)})
    assert unknown.status_code == 400


def test_an_op_may_not_issue_and_a_viewer_may_do_neither(signed_in, ctx, token):
    op = signed_in(Role.Op)
    refused = op.post(f"{PAGE}/tokens", data={"csrf": csrf(op), "label": "x"})
    assert refused.status_code == 403 and "needs Admin" in refused.text
    viewer = signed_in(Role.Viewer)
    assert viewer.post(f"{PAGE}/tokens", data={"csrf": csrf(viewer)}).status_code == 403
    assert viewer.post(f"{PAGE}/tokens/{token}/revoke", data={"csrf": csrf(viewer)}).status_code == 403
    assert revoked(ctx) == [False]


def test_without_the_csrf_token_nothing_changes(signed_in, ctx, token):
    client = signed_in(Role.Admin)
    assert client.post(f"{PAGE}/tokens", data={"label": "x"}).status_code == 403
    assert client.post(f"{PAGE}/tokens/{token}/revoke", data={"csrf": "forged"}).status_code == 403
    assert revoked(ctx) == [False]


def test_a_missing_environment_is_the_404_page(signed_in, ctx, token):
    client = signed_in(Role.Admin)
    missing = client.get("/console/environments/nowhere/workers")
    assert missing.status_code == 404 and "<h1>Not found</h1>" in missing.text
    assert client.post("/console/environments/nowhere/workers/tokens", data={"csrf": csrf(client)}).status_code == 404
    assert client.post(f"/console/environments/nowhere/workers/tokens/{token}/revoke",
                       data={"csrf": csrf(client)}).status_code == 404
    assert revoked(ctx) == [False]


def test_a_local_environment_offers_no_token(signed_in, ctx, tmp_path):
    make_env(ctx, tmp_path, "solo", executor="local")
    answer = signed_in(Role.Admin).get("/console/environments/solo/workers")
    assert answer.status_code == 200 and "hosts can join only an environment" in answer.text
    assert 'action="/console/environments/solo/workers/tokens"' not in answer.text
