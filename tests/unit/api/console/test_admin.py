"""The console's admin page over a real store: Admin only, like the API's routes; access keys
(the secret shown once), KMS-like keys (create, rotate), and the audit log newest first. Refusals
and a missing CSRF token change nothing; a form's errors show next to their fields."""
from __future__ import annotations

import re

import pytest

from hangar.domain import access, audit, keys
from hangar.domain.access import Role
from tests.unit.api.console.conftest import csrf
from tests.unit.api.console.pagecheck import assert_labelled, field_error

PAGE = "/console/admin"


def kms(ctx) -> list[tuple[str | None, int]]:
    return [(k.alias, k.current_version) for k in keys.list_keys(ctx)]


def test_an_admin_sees_keys_and_the_audit_log(signed_in, ctx):
    keys.ensure_default_key(ctx)
    client = signed_in(Role.Admin)
    answer = client.get(PAGE)
    assert answer.status_code == 200
    assert 'href="/console/admin" aria-current="page"' in answer.text
    assert "alias/hangar/default" in answer.text and 'id="audit"' in answer.text
    [mine] = access.list_access_keys(ctx)
    assert f'data-access-key="{mine.access_key_id}"' in answer.text and "(yours)" in answer.text
    assert_labelled(answer.text)


@pytest.mark.parametrize("role", [Role.Op, Role.User, Role.Viewer])
def test_below_admin_the_page_and_every_action_are_refused_and_nothing_changes(signed_in, ctx, role):
    keys.ensure_default_key(ctx)
    other = access.create_access_key(ctx, role=Role.Viewer)
    client = signed_in(role)
    assert client.get(PAGE).status_code == 403
    token = csrf(client)
    before_keys, before_kms = access.list_access_keys(ctx), kms(ctx)
    assert client.post(f"{PAGE}/access-keys", data={"csrf": token, "role": "Admin"}).status_code == 403
    assert client.post(f"{PAGE}/access-keys/{other.access_key_id}/revoke", data={"csrf": token}).status_code == 403
    assert client.post(f"{PAGE}/keys", data={"csrf": token, "alias": "alias/mine"}).status_code == 403
    refused = client.post(f"{PAGE}/keys/alias/hangar/default/rotate", data={"csrf": token})
    assert refused.status_code == 403 and "needs Admin" in refused.text
    assert access.list_access_keys(ctx) == before_keys and kms(ctx) == before_kms
    assert "Admin</a>" not in client.get("/console").text  # no link to it either


def test_create_an_access_key_shows_its_secret_once(signed_in, ctx):
    client = signed_in(Role.Admin)
    made = client.post(f"{PAGE}/access-keys", data={"csrf": csrf(client), "role": "Op", "description": "deploys"})
    assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
    created = next(k for k in access.list_access_keys(ctx) if k.description == "deploys")
    assert created.role == "Op" and not created.revoked
    secret = re.search(r'<div class="secret"[^>]*>([^<]+)</div>', made.text)[1]
    assert access.access_key_secret(ctx, access_key_id=created.access_key_id) == (secret, Role.Op)
    assert secret not in client.get(PAGE).text


@pytest.mark.parametrize("role", ["", "Root"])
def test_an_unknown_role_is_said_at_its_field_and_nothing_is_created(signed_in, ctx, role):
    client = signed_in(Role.Admin)
    answer = client.post(f"{PAGE}/access-keys", data={"csrf": csrf(client), "role": role, "description": "ci"})
    assert answer.status_code == 400
    assert "is not one of Admin, Op, User, Viewer, Scrape" in field_error(answer.text, "access-role")
    assert 'value="ci"' in answer.text
    assert len(access.list_access_keys(ctx)) == 1  # the signed-in one


def test_revoke_an_access_key(signed_in, ctx):
    other = access.create_access_key(ctx, role=Role.Viewer)
    client = signed_in(Role.Admin)
    done = client.post(f"{PAGE}/access-keys/{other.access_key_id}/revoke", data={"csrf": csrf(client)},
                       follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"{PAGE}?revoked={other.access_key_id}#access-keys"
    assert {k.access_key_id: k.revoked for k in access.list_access_keys(ctx)}[other.access_key_id] is True
    assert f"Access key {other.access_key_id} revoked" in client.get(done.headers["location"]).text
    unknown = client.post(f"{PAGE}/access-keys/HKIANOSUCHKEY/revoke", data={"csrf": csrf(client)})
    assert unknown.status_code == 400 and "does not exist" in unknown.text


def test_create_and_rotate_a_key(signed_in, ctx):
    client = signed_in(Role.Admin)
    made = client.post(f"{PAGE}/keys", data={"csrf": csrf(client), "alias": "alias/team-a", "description": "team A"},
                       follow_redirects=False)
    assert made.status_code == 303
    [key] = [k for k in keys.list_keys(ctx) if k.alias == "alias/team-a"]
    assert key.description == "team A" and made.headers["location"] == f"{PAGE}?key_created={key.key_id}#kms-keys"
    rotated = client.post(f"{PAGE}/keys/{key.key_id}/rotate", data={"csrf": csrf(client)}, follow_redirects=False)
    assert rotated.status_code == 303 and f"rotated={key.key_id}&rewrapped=0" in rotated.headers["location"]
    assert keys.get_key(ctx, key="alias/team-a").current_version == 2
    assert f"Key {key.key_id} rotated: 0 data keys" in client.get(rotated.headers["location"]).text
    by_alias = client.post(f"{PAGE}/keys/alias/team-a/rotate", data={"csrf": csrf(client)}, follow_redirects=False)
    assert by_alias.status_code == 303 and keys.get_key(ctx, key=key.key_id).current_version == 3
    missing = client.post(f"{PAGE}/keys/alias/nothing/rotate", data={"csrf": csrf(client)})
    assert missing.status_code == 400 and "does not exist" in missing.text


@pytest.mark.parametrize("alias, words", [("team-a", "must look like alias/NAME"), ("alias/hangar/x", "reserved"),
                                          ("alias/taken", "already names a key")])
def test_a_bad_alias_is_said_at_its_field_and_nothing_is_created(signed_in, ctx, alias, words):
    keys.create_key(ctx, alias="alias/taken")
    client = signed_in(Role.Admin)
    before = kms(ctx)
    answer = client.post(f"{PAGE}/keys", data={"csrf": csrf(client), "alias": alias, "description": "kept"})
    assert answer.status_code == 400 and words in field_error(answer.text, "key-alias")
    assert f'value="{alias}"' in answer.text and 'value="kept"' in answer.text
    assert kms(ctx) == before


def test_a_description_too_long_is_said_at_its_field(signed_in, ctx):
    client = signed_in(Role.Admin)
    answer = client.post(f"{PAGE}/keys", data={"csrf": csrf(client), "alias": "alias/x", "description": "d" * 8193})
    assert answer.status_code == 400 and "too long" in field_error(answer.text, "key-description")
    assert kms(ctx) == []


def test_without_the_csrf_token_nothing_changes(signed_in, ctx):
    keys.ensure_default_key(ctx)
    other = access.create_access_key(ctx, role=Role.Viewer)
    client = signed_in(Role.Admin)
    before_keys, before_kms = access.list_access_keys(ctx), kms(ctx)
    assert client.post(f"{PAGE}/access-keys", data={"role": "Admin"}).status_code == 403
    assert client.post(f"{PAGE}/access-keys/{other.access_key_id}/revoke", data={"csrf": "forged"}).status_code == 403
    assert client.post(f"{PAGE}/keys", data={"alias": "alias/mine"}).status_code == 403
    assert client.post(f"{PAGE}/keys/alias/hangar/default/rotate", data={}).status_code == 403
    assert access.list_access_keys(ctx) == before_keys and kms(ctx) == before_kms


def test_the_audit_log_shows_console_actions_newest_first(signed_in, ctx):
    client = signed_in(Role.Admin)
    client.post(f"{PAGE}/keys", data={"csrf": csrf(client), "alias": "alias/first"})
    [key] = keys.list_keys(ctx)
    client.post(f"{PAGE}/keys/{key.key_id}/rotate", data={"csrf": csrf(client)})
    client.post(f"{PAGE}/keys", data={"alias": "alias/no-token"})  # refused, and recorded
    entries = audit.read_audit(ctx)
    assert [e.action for e in entries[:3]] == ["console.key_create", "console.key_rotate", "console.key_create"]
    assert entries[1].target == key.key_id and entries[0].status_code == 403
    text = client.get(PAGE).text
    shown = re.findall(r"<td>(console\.[a-z_]+)</td>", text[text.index('id="audit"'):])
    assert shown[:3] == ["console.key_create", "console.key_rotate", "console.key_create"]
