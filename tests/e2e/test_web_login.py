"""MWAA's web login in a real headless Chromium, end to end.

CreateWebLoginToken (real boto3 `mwaa` client) gives a WebToken and WebServerHostname;
opening ``http://{WebServerHostname}/aws_mwaa/aws-console-sso?login=true#{WebToken}``
must land the browser in the environment's Airflow UI, logged in with the caller's
mapped role, without ever showing a password or a login form.

Chromium is Debian's /usr/bin/chromium (``scripts/ensure-chromium`` installs it); the
tests never download a browser. They drive it with the Chrome DevTools Protocol over
``--remote-debugging-pipe`` (fds 3 and 4, NUL-separated JSON), so no extra Python
package, driver binary or debugging port is needed. Without Chromium the tests skip,
unless CI is set: then ``test_chromium_is_installed`` fails.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

from tests.e2e.conftest import MWAA_ENV
from tests.e2e.harness import ControlPlane, wait_for
from tests.e2e.mwaa_client import mwaa

CHROMIUM = Path("/usr/bin/chromium")
IN_CI = bool(os.environ.get("CI"))
MISSING_REASON = (f"{CHROMIUM} is not installed (run scripts/ensure-chromium as root, or "
                  "apt-get install -y chromium chromium-driver); the tests never download a browser")

pytestmark = [pytest.mark.e2e]
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=MISSING_REASON + (" — CI is set: see test_chromium_is_installed" if IN_CI else ""))

ENV = MWAA_ENV
SSO_PATH = "/aws_mwaa/aws-console-sso"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------
# A minimal Chrome DevTools Protocol client over --remote-debugging-pipe
# --------------------------------------------------------------------------------------

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,900", "--remote-debugging-pipe"]
# Chromium reads CDP on fd 3 and writes on fd 4. This small launcher (run with `python -c`) puts
# our pipe ends there, starts Chromium as its child and stays as a child subreaper: every helper
# process Chromium leaves behind is re-parented to it and reaped, so none outlives close() even
# under an init that reaps nothing. It exits once the last one is gone. (os.dup first, so
# renumbering never clobbers the other end; dup2 onto the same number keeps os.dup's
# close-on-exec flag, hence set_inheritable.)
LAUNCHER = """
import ctypes, os, sys
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
ends = [int(sys.argv[1]), int(sys.argv[2])]
r, w = os.dup(ends[0]), os.dup(ends[1])
if os.fork() == 0:
    os.dup2(r, 3); os.dup2(w, 4); os.set_inheritable(3, True); os.set_inheritable(4, True)
    os.execv(sys.argv[3], sys.argv[3:])
for fd in (r, w, *ends):
    os.close(fd)
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
    except InterruptedError:
        continue
"""


class CdpError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with a fresh --user-data-dir; everything it leaves is removed by close()."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="hangar-chromium-"))
        self.log_path = self.folder / "chromium.log"
        to_chrome_read, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_write = os.pipe()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", LAUNCHER, str(to_chrome_read), str(from_chrome_write), str(CHROMIUM),
                 *FLAGS, f"--user-data-dir={self.folder / 'profile'}", "about:blank"],
                pass_fds=(to_chrome_read, from_chrome_write), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        os.close(to_chrome_read)
        os.close(from_chrome_write)
        self._lock = threading.Lock()
        self._next_id = 0
        self._waiting: dict[int, list] = {}
        self._gone = False  # the pipe from Chromium reached EOF
        self.events: list[dict] = []
        threading.Thread(target=self._read, name="cdp-reader", daemon=True).start()
        try:
            self.version = self.send("Browser.getVersion")["product"]
        except CdpError:
            self.close()
            raise

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_chrome, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if "id" not in message:
                    self.events.append(message)
                elif (slot := self._waiting.get(message["id"])) is not None:
                    slot[1] = message
                    slot[0].set()
        self._gone = True
        for slot in list(self._waiting.values()):  # Chromium went away: wake every waiter
            slot[0].set()

    def send(self, method: str, params: dict | None = None, *, session: str | None = None,
             timeout: float = 30) -> dict:
        with self._lock:
            self._next_id += 1
            ident = self._next_id
            slot = self._waiting[ident] = [threading.Event(), None]
            message = {"id": ident, "method": method, "params": params or {}}
            if session:
                message["sessionId"] = session
            try:
                os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
            except OSError as exc:
                self._waiting.pop(ident, None)
                raise CdpError(f"{method}: Chromium is gone ({exc}); log: {self.log_tail()}") from None
        deadline = time.monotonic() + timeout
        try:
            while not slot[0].wait(0.1) and not self._gone and time.monotonic() < deadline:
                pass
            if slot[1] is None:
                why = "Chromium exited" if self._gone else f"no answer from Chromium within {timeout:.0f} s"
                raise CdpError(f"{method}: {why}; log: {self.log_tail()}")
        finally:
            self._waiting.pop(ident, None)
        if "error" in slot[1]:
            raise CdpError(f"{method}: {slot[1]['error']}")
        return slot[1]["result"]

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    def new_page(self) -> "Page":
        """A tab in its own new browser context (own cookie jar), like a fresh incognito window."""
        context = self.send("Target.createBrowserContext")["browserContextId"]
        target = self.send("Target.createTarget", {"url": "about:blank", "browserContextId": context})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session, context)
        page.send("Page.enable")
        page.send("Network.enable")
        return page

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except CdpError:
            pass
        try:  # the launcher exits when Chromium and every helper it started have exited
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        try:  # stragglers: the whole process group (launcher, Chromium and its helpers)
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait(timeout=10)
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.folder, ignore_errors=True)


class Page:
    def __init__(self, browser: Browser, session: str, context: str) -> None:
        self.browser, self.session, self.context = browser, session, context

    def send(self, method: str, params: dict | None = None, timeout: float = 30) -> dict:
        return self.browser.send(method, params, session=self.session, timeout=timeout)

    def events(self, method: str) -> list[dict]:
        return [e["params"] for e in list(self.browser.events)
                if e.get("sessionId") == self.session and e["method"] == method]

    def navigate(self, url: str) -> None:
        result = self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CdpError(f"navigating to {url}: {result['errorText']}")

    def evaluate(self, expression: str, timeout: float = 30):
        """The JSON value of `expression` in the page (promises awaited)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                 "returnByValue": True, "timeout": timeout * 1000},
                           timeout=timeout + 5)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CdpError(f"{expression[:100]}: {details.get('exception', {}).get('description') or details}")
        return result["result"].get("value")

    def poll(self, expression: str, *, timeout: float, what: str):
        """Wait until `expression` is truthy in the page; navigations in between are tolerated."""
        def probe():
            try:
                return self.evaluate(expression, timeout=10)
            except CdpError:  # e.g. the execution context was destroyed by a navigation
                return None

        return wait_for(probe, timeout=timeout, interval=0.25, what=what)

    def fetch(self, method: str, path: str, body: dict | None = None) -> int:
        """HTTP status of a same-origin fetch made by the page itself (its cookies, its origin)."""
        init: dict = {"method": method, "credentials": "same-origin"}
        if body is not None:
            init.update(body=json.dumps(body), headers={"Content-Type": "application/json"})
        return self.evaluate(f"fetch({json.dumps(path)}, {json.dumps(init)}).then(r => r.status)")

    def cookies(self) -> list[dict]:
        return self.send("Network.getCookies")["cookies"]

    def screenshot(self) -> bytes:
        return base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"])

    def close(self) -> None:
        try:
            self.browser.send("Target.disposeBrowserContext", {"browserContextId": self.context})
        except CdpError:
            pass


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    started = Browser()
    yield started
    started.close()


@pytest.fixture
def page(browser: Browser):
    opened = browser.new_page()
    yield opened
    opened.close()


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


def _assert_no_password_anywhere(page: Page) -> None:
    """No password field, no login form, no password-like text on the page the user sees."""
    seen = page.evaluate("""({
        passwordInputs: document.querySelectorAll('input[type=password]').length,
        forms: Array.from(document.forms).map(f => f.getAttribute('action') || ''),
        text: document.body ? document.body.innerText : ''
    })""")
    assert seen["passwordInputs"] == 0, seen
    assert not any("login" in action for action in seen["forms"]), seen["forms"]
    lowered = seen["text"].lower()
    for word in ("password", "passwd"):
        assert word not in lowered, f"{word!r} on the page: {seen['text'][:500]!r}"


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------

def test_chromium_is_installed() -> None:
    if CHROMIUM.exists():
        return
    if IN_CI:
        pytest.fail(f"CI is set and {MISSING_REASON}")
    pytest.skip(MISSING_REASON)


@needs_chromium
def test_web_login_lands_in_the_airflow_ui_as_user(plane, keys, environment, page, tmp_path) -> None:
    client = mwaa(plane.url, keys["User"])
    token = client.create_web_login_token(Name=environment)
    web_token, host = token["WebToken"], token["WebServerHostname"]
    assert token["IamIdentity"] == keys["User"]["access_key_id"]
    origin = f"http://{host}"

    page.navigate(_sso_url(token))
    # the landing page posts the token and is redirected to the UI home: not the SSO page, not a login page
    page.poll(f"location.origin === {json.dumps(origin)} && location.pathname === '/'", timeout=60,
              what="the browser to reach the Airflow UI home")
    page.poll("document.title.endsWith('Airflow') && !!document.querySelector('a[href$=\"/dags\"]')"
              " && document.body.innerText.includes('Welcome')",
              timeout=60, what="the Airflow UI (navigation and home page) to render")
    href = page.evaluate("location.href")
    assert href == f"{origin}/", href
    assert web_token not in href and "#" not in href
    _assert_no_password_anywhere(page)

    # the token left no trace in the address bar or history, and travelled only in the POST body
    history = page.send("Page.getNavigationHistory")["entries"]
    assert all(web_token not in e["url"] and web_token not in e.get("userTypedURL", "") for e in history), history
    requests = [e["request"] for e in page.events("Network.requestWillBeSent")]
    assert requests and all(web_token not in r["url"] and web_token not in json.dumps(r["headers"])
                            for r in requests)
    posts = [r for r in requests if r["method"] == "POST" and urlsplit(r["url"]).path == f"{SSO_PATH}/login"]
    assert len(posts) == 1, [(r["method"], r["url"]) for r in requests]
    documents = [urlsplit(e["response"]["url"]).path for e in page.events("Network.responseReceived")
                 if e["type"] == "Document"]
    assert documents and not any(path.startswith(("/auth/login", "/login")) for path in documents), documents

    # the session is Airflow's own cookie (HttpOnly), for this caller with the User role
    session = [c for c in page.cookies() if c["name"] == "_token"]
    assert len(session) == 1 and session[0]["httpOnly"], session
    claims = _jwt_claims(session[0]["value"])
    assert claims["sub"] == keys["User"]["access_key_id"] and claims["role"] == "USER", claims
    assert session[0]["value"] != web_token

    # the DAG list renders with the example DAG; the screenshot is a real, non-empty PNG
    page.navigate(f"{origin}/dags")
    page.poll("document.body && document.body.innerText.includes('hello_taskflow')", timeout=60,
              what="the DAG list to show hello_taskflow")
    assert urlsplit(page.evaluate("location.href")).path == "/dags"
    _assert_no_password_anywhere(page)
    shot = page.screenshot()
    path = tmp_path / "airflow-dags-after-web-login.png"
    path.write_bytes(shot)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000, len(data)
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 800 and height >= 600, (width, height)

    # same-origin calls from the page use the cookie: the User role may read DAGs, not write variables
    assert page.fetch("GET", "/api/v2/dags") == 200
    assert page.fetch("POST", "/api/v2/variables", {"key": "web_login_probe", "value": "x"}) == 403
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

    page.navigate(_sso_url(token))
    page.poll(f"location.pathname === {json.dumps(SSO_PATH + '/login')} && document.readyState === 'complete'",
              timeout=30, what="the sign-in to be refused")
    assert page.evaluate("document.title") == "Airflow sign-in failed"
    assert "Sign-in failed" in page.evaluate("document.body.innerText")
    statuses = [e["response"]["status"] for e in page.events("Network.responseReceived")
                if e["type"] == "Document" and urlsplit(e["response"]["url"]).path == f"{SSO_PATH}/login"]
    assert statuses == [401], statuses
    _assert_no_password_anywhere(page)
    assert token["WebToken"] not in page.evaluate("location.href")
    assert not [c for c in page.cookies() if c["name"] == "_token"]
    # nothing of the UI is reachable from this browser
    page.navigate(f"http://{token['WebServerHostname']}/api/v2/dags")
    page.poll("document.readyState === 'complete'", timeout=30, what="the API answer")
    api = [e["response"]["status"] for e in page.events("Network.responseReceived")
           if e["type"] == "Document" and urlsplit(e["response"]["url"]).path == "/api/v2/dags"]
    assert api == [401], api


@needs_chromium
def test_sso_page_without_a_token_says_so(plane, keys, environment, page) -> None:
    host = mwaa(plane.url, keys["User"]).create_web_login_token(Name=environment)["WebServerHostname"]
    page.navigate(f"http://{host}{SSO_PATH}?login=true")
    text = page.poll("document.body && document.body.innerText.includes('No login token') && document.body.innerText",
                     timeout=30, what="the missing-token message")
    assert "after #" in text
    assert not [c for c in page.cookies() if c["name"] == "_token"]


def test_viewer_cannot_get_a_web_login_token(plane, keys, environment) -> None:
    with pytest.raises(ClientError) as denied:
        mwaa(plane.url, keys["Viewer"]).create_web_login_token(Name=environment)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
