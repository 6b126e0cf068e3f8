"""MWAA's web login in a real headless Chromium, end to end.

CreateWebLoginToken (real boto3 `mwaa` client) gives a WebToken and WebServerHostname;
opening ``http://{WebServerHostname}/aws_mwaa/aws-console-sso?login=true#{WebToken}``
must land the browser in the environment's Airflow UI, logged in with the caller's
mapped role, without ever showing a password or a login form.

Chromium is Debian's, driven by Playwright for Python (tests.e2e.browser).
"""
from __future__ import annotations

import base64
import json
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError
from playwright.sync_api import Browser, Page, Request, Response, sync_playwright

from tests.e2e.browser import launch, needs_chromium, require_chromium
from tests.e2e.conftest import MWAA_ENV
from tests.e2e.harness import ControlPlane, wait_for
from tests.e2e.mwaa_client import mwaa

pytestmark = [pytest.mark.e2e]

ENV = MWAA_ENV
SSO_PATH = "/aws_mwaa/aws-console-sso"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        started = launch(playwright)
        yield started
        started.close()


@pytest.fixture
def page(browser: Browser):
    """A tab in its own browser context (own cookie jar), like a fresh incognito window."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


@pytest.fixture
def keys(mwaa_keys) -> dict[str, dict]:
    return mwaa_keys


@pytest.fixture(scope="module")
def environment(plane: ControlPlane, mwaa_keys, mwaa_env):
    """The session's AVAILABLE Airflow 3.3.2 environment created through boto3, its example DAG parsed."""
    admin = mwaa(plane.url, mwaa_keys["Admin"])
    wait_for(lambda: _dag_visible(admin, "hello_taskflow"), timeout=180, what="hello_taskflow to be parsed")
    return mwaa_env


def _dag_visible(client, dag_id: str) -> bool:
    try:
        return client.invoke_rest_api(Name=ENV, Path=f"/dags/{dag_id}", Method="GET")["RestApiStatusCode"] == 200
    except ClientError:
        return False


def _sso_url(token: dict) -> str:
    return f"http://{token['WebServerHostname']}{SSO_PATH}?login=true#{token['WebToken']}"


def _jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _record(page: Page) -> tuple[list[Request], list[Response]]:
    """Every request the page sends and every response it receives from now on."""
    requests: list[Request] = []
    responses: list[Response] = []
    page.on("request", lambda request: requests.append(request))
    page.on("response", lambda response: responses.append(response))
    return requests, responses


def _documents(responses: list[Response], path: str | None = None) -> list[Response]:
    return [r for r in responses if r.request.resource_type == "document"
            and (path is None or urlsplit(r.url).path == path)]


def _session_cookies(page: Page) -> list[dict]:
    return [c for c in page.context.cookies() if c["name"] == "_token"]


def _fetch(page: Page, method: str, path: str, body: dict | None = None) -> int:
    """HTTP status of a same-origin fetch made by the page itself (its cookies, its origin)."""
    init: dict = {"method": method, "credentials": "same-origin"}
    if body is not None:
        init.update(body=json.dumps(body), headers={"Content-Type": "application/json"})
    return page.evaluate("([path, init]) => fetch(path, init).then(r => r.status)", [path, init])


def _assert_no_password_anywhere(page: Page) -> None:
    """No password field, no login form, no password-like text on the page the user sees."""
    assert page.locator("input[type=password]").count() == 0
    actions = [form.get_attribute("action") or "" for form in page.locator("form").all()]
    assert not any("login" in action for action in actions), actions
    text = page.locator("body").inner_text()
    for word in ("password", "passwd"):
        assert word not in text.lower(), f"{word!r} on the page: {text[:500]!r}"


def test_chromium_is_installed() -> None:
    require_chromium()


@needs_chromium
def test_web_login_lands_in_the_airflow_ui_as_user(plane, keys, environment, page, tmp_path) -> None:
    client = mwaa(plane.url, keys["User"])
    token = client.create_web_login_token(Name=environment)
    web_token, host = token["WebToken"], token["WebServerHostname"]
    assert token["IamIdentity"] == keys["User"]["access_key_id"]
    origin = f"http://{host}"
    requests, responses = _record(page)

    # the landing page posts the token and is redirected to the UI home: not the SSO page, not a login page
    page.goto(_sso_url(token), wait_until="commit")
    page.wait_for_url(lambda url: url == f"{origin}/", timeout=60_000)
    page.wait_for_function("document.title.endsWith('Airflow') && !!document.querySelector('a[href$=\"/dags\"]')"
                           " && document.body.innerText.includes('Welcome')", timeout=60_000)
    assert page.url == f"{origin}/", page.url
    assert web_token not in page.url and "#" not in page.url
    _assert_no_password_anywhere(page)

    # the token left no trace in the address bar or history, and travelled only in the POST body
    history = page.context.new_cdp_session(page).send("Page.getNavigationHistory")["entries"]
    assert all(web_token not in e["url"] and web_token not in e.get("userTypedURL", "") for e in history), history
    assert requests and all(web_token not in r.url and web_token not in json.dumps(r.headers) for r in requests)
    posts = [r for r in requests if r.method == "POST" and urlsplit(r.url).path == f"{SSO_PATH}/login"]
    assert len(posts) == 1, [(r.method, r.url) for r in requests]
    assert web_token in (posts[0].post_data or "")
    documents = [urlsplit(r.url).path for r in _documents(responses)]
    assert documents and not any(path.startswith(("/auth/login", "/login")) for path in documents), documents

    # the session is Airflow's own cookie (HttpOnly), for this caller with the User role
    session = _session_cookies(page)
    assert len(session) == 1 and session[0]["httpOnly"], session
    claims = _jwt_claims(session[0]["value"])
    assert claims["sub"] == keys["User"]["access_key_id"] and claims["role"] == "USER", claims
    assert session[0]["value"] != web_token

    # the DAG list renders with the example DAG; the screenshot is a real, non-empty PNG
    page.goto(f"{origin}/dags")
    page.wait_for_function("document.body && document.body.innerText.includes('hello_taskflow')", timeout=60_000)
    assert urlsplit(page.url).path == "/dags"
    _assert_no_password_anywhere(page)
    path = tmp_path / "airflow-dags-after-web-login.png"
    page.screenshot(path=path)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000, len(data)
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 800 and height >= 600, (width, height)

    # same-origin calls from the page use the cookie: the User role may read DAGs, not write variables
    assert _fetch(page, "GET", "/api/v2/dags") == 200
    assert _fetch(page, "POST", "/api/v2/variables", {"key": "web_login_probe", "value": "x"}) == 403
    admin_view = mwaa(plane.url, keys["Admin"]).invoke_rest_api(Name=environment, Path="/variables", Method="GET")
    assert all(v["key"] != "web_login_probe" for v in admin_view["RestApiResponse"]["variables"])


@needs_chromium
@pytest.mark.parametrize("kind", ["forged", "cli-token", "api-token"])
def test_bad_web_token_lands_on_a_401_page(plane, keys, environment, page, kind) -> None:
    client = mwaa(plane.url, keys["User"])
    token = client.create_web_login_token(Name=environment)
    if kind == "forged":  # the signature no longer matches
        signature = token["WebToken"].rsplit(".", 1)[1]
        token["WebToken"] = token["WebToken"][: -len(signature)] + signature[::-1]
    elif kind == "cli-token":  # a valid token for another purpose
        token["WebToken"] = client.create_cli_token(Name=environment)["CliToken"]
    else:  # Airflow REST API token from the native API
        token["WebToken"] = plane.cli("env", "token", environment).stdout.strip()
    _, responses = _record(page)

    page.goto(_sso_url(token), wait_until="commit")
    page.wait_for_url(lambda url: urlsplit(url).path == f"{SSO_PATH}/login", timeout=30_000)
    assert page.title() == "Airflow sign-in failed"
    assert "Sign-in failed" in page.locator("body").inner_text()
    statuses = [r.status for r in _documents(responses, f"{SSO_PATH}/login")]
    assert statuses == [401], statuses
    _assert_no_password_anywhere(page)
    assert token["WebToken"] not in page.url
    assert not _session_cookies(page)
    # nothing of the UI is reachable from this browser
    page.goto(f"http://{token['WebServerHostname']}/api/v2/dags")
    api = [r.status for r in _documents(responses, "/api/v2/dags")]
    assert api == [401], api


@needs_chromium
def test_sso_page_without_a_token_says_so(plane, keys, environment, page) -> None:
    host = mwaa(plane.url, keys["User"]).create_web_login_token(Name=environment)["WebServerHostname"]
    page.goto(f"http://{host}{SSO_PATH}?login=true")
    page.wait_for_function("document.body && document.body.innerText.includes('No login token')", timeout=30_000)
    assert "after #" in page.locator("body").inner_text()
    assert not _session_cookies(page)


def test_viewer_cannot_get_a_web_login_token(plane, keys, environment) -> None:
    with pytest.raises(ClientError) as denied:
        mwaa(plane.url, keys["Viewer"]).create_web_login_token(Name=environment)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
