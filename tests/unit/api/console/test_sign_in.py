"""Console sign-in, sessions and CSRF over HTTP with a real store: a wrong secret, an expired
session that returns to the page asked for, a revoked key, a form without its token, and no body
read before the session is known."""
from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from hangar.domain import console_sessions
from hangar.domain.access import Role, create_access_key, revoke_access_key
from hangar.store.console_sessions import ConsoleSessionRow
from hangar.store.models import utcnow
from tests.unit.api.console.conftest import ADMIN_KEY, CSRF, csrf, sign_in


def test_the_form_has_the_labelled_fields_and_a_wrong_secret_is_refused_by_name(app, ctx):
    key = create_access_key(ctx, role=Role.Viewer)
    with TestClient(app) as client:
        form = client.get("/console/sign-in")
        assert '<label for="access_key_id">Access key ID</label>' in form.text
        assert '<label for="secret_access_key">Secret access key</label>' in form.text
        wrong = sign_in(client, key.access_key_id, "not-the-secret")
        assert wrong.status_code == 401
        assert "the access key ID or the secret access key is wrong" in wrong.text
        assert "hangar_session" not in wrong.headers.get("set-cookie", "")
        unknown = sign_in(client, "HKIANOSUCHKEY", "x")
        assert unknown.status_code == 401 and "is wrong" in unknown.text


def test_signing_in_gives_an_httponly_samesite_cookie_and_returns_to_the_page_asked_for(app, ctx):
    key = create_access_key(ctx, role=Role.Op)
    with TestClient(app) as client:
        asked = client.get("/console/environments/rows?x=1", follow_redirects=False)
        assert asked.status_code == 303
        assert asked.headers["location"] == "/console/sign-in?next=%2Fconsole%2Fenvironments%2Frows%3Fx%3D1"
        done = sign_in(client, key.access_key_id, key.secret_access_key, next_="/console/environments/rows?x=1")
        assert done.status_code == 303 and done.headers["location"] == "/console/environments/rows?x=1"
        cookie = done.headers["set-cookie"]
        assert "hangar_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
        assert client.get("/console").status_code == 200


def test_the_bootstrap_admin_key_signs_in_as_admin(app):
    with TestClient(app) as client:
        assert sign_in(client, "admin", ADMIN_KEY).status_code == 303
        assert "Admin" in client.get("/console").text


def test_an_open_redirect_is_not_followed(app, ctx):
    key = create_access_key(ctx, role=Role.Viewer)
    with TestClient(app) as client:
        done = sign_in(client, key.access_key_id, key.secret_access_key, next_="https://evil.example/")
        assert done.headers["location"] == "/console"


def test_a_sign_in_without_the_forms_nonce_is_refused(app, ctx):
    key = create_access_key(ctx, role=Role.Admin)
    with TestClient(app) as client:
        refused = client.post("/console/sign-in", data={"access_key_id": key.access_key_id,
                                                        "secret_access_key": key.secret_access_key, "csrf": "forged"},
                              follow_redirects=False)
        assert refused.status_code == 400 and "did not come from this page" in refused.text
        assert "hangar_session" not in refused.headers.get("set-cookie", "")


def test_an_idle_session_expires_and_sign_in_returns_to_the_page(app, ctx):
    key = create_access_key(ctx, role=Role.Viewer)
    with TestClient(app) as client:
        sign_in(client, key.access_key_id, key.secret_access_key)
        token = client.cookies["hangar_session"]
        assert console_sessions.resume(ctx, token=token) is not None
        later = utcnow() + timedelta(minutes=ctx.settings.console_idle_minutes - 1)
        assert console_sessions.resume(ctx, token=token, now=later) is not None  # slid forward
        assert console_sessions.resume(ctx, token=token, now=later + timedelta(minutes=ctx.settings.console_idle_minutes - 1)) is not None
        with ctx.store.session() as session:
            for row in session.query(ConsoleSessionRow):
                row.last_seen_at = utcnow() - timedelta(minutes=ctx.settings.console_idle_minutes + 1)
        gone = client.get("/console?page=2", follow_redirects=False)
        assert gone.status_code == 303
        assert gone.headers["location"] == "/console/sign-in?next=%2Fconsole%3Fpage%3D2&expired=1"
        assert "Your session has ended" in client.get(gone.headers["location"]).text


def test_a_session_ends_at_its_absolute_limit_however_active(ctx):
    key = create_access_key(ctx, role=Role.Viewer)
    token, _ = console_sessions.sign_in(ctx, access_key_id=key.access_key_id, secret=key.secret_access_key,
                                        admin_key=ADMIN_KEY)
    moment = utcnow()
    for _ in range(int(ctx.settings.console_session_hours * 2) + 1):
        moment += timedelta(minutes=30)
        if console_sessions.resume(ctx, token=token, now=moment) is None:
            break
    assert moment - utcnow() <= timedelta(hours=ctx.settings.console_session_hours, minutes=31)
    assert console_sessions.resume(ctx, token=token, now=moment) is None


def test_a_revoked_key_ends_its_sessions(signed_in, ctx):
    client = signed_in(Role.Op)
    key_id = client.get("/console").text.split('<span>', 1)[1].split(" ", 1)[0]
    revoke_access_key(ctx, access_key_id=key_id)
    assert client.get("/console", follow_redirects=False).status_code == 303


def test_an_htmx_request_without_a_session_redirects_the_whole_page(app):
    with TestClient(app) as client:
        answer = client.get("/console/environments/rows", headers={"HX-Request": "true",
                                                                   "HX-Current-URL": "http://testserver/console"})
        assert answer.status_code == 200 and answer.headers["HX-Redirect"].startswith("/console/sign-in?next=%2Fconsole")


def test_a_post_without_a_session_is_answered_before_its_body_is_read(app):
    with TestClient(app) as client:
        answer = client.post("/console/sign-out", content=b"x" * 10, follow_redirects=False,
                             headers={"Content-Type": "application/x-www-form-urlencoded", "Content-Length": "999999999"})
        assert answer.status_code in (303, 413)


def test_sign_out_needs_the_csrf_token_and_ends_the_session(signed_in):
    client = signed_in(Role.Viewer)
    refused = client.post("/console/sign-out", data={}, follow_redirects=False)
    assert refused.status_code == 403 and "security token" in refused.text
    assert client.get("/console").status_code == 200
    done = client.post("/console/sign-out", data={"csrf": csrf(client)}, follow_redirects=False)
    assert done.headers["location"] == "/console/sign-in?signed_out=1"
    assert client.get("/console", follow_redirects=False).status_code == 303


def test_the_csrf_token_is_bound_to_the_session(signed_in):
    first, second = signed_in(Role.Viewer), signed_in(Role.Viewer)
    assert csrf(first) != csrf(second)
    refused = first.post("/console/sign-out", data={"csrf": csrf(second)}, follow_redirects=False)
    assert refused.status_code == 403
    assert CSRF.search(first.get("/console").text)


def test_pages_are_not_cached_framed_or_open_to_other_scripts(signed_in):
    page = signed_in(Role.Viewer).get("/console")
    assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
