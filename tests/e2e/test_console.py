"""The console in a real Chromium (Debian's, driven by Playwright), against a real control plane
and real Airflow: the whole path of a new user as Admin, a Viewer refused every write, and each
kind of bad input with its message on the page and nothing changed.

Screenshots of every page at 1280 and 390 pixels wide go to `console-screenshots` under the test
session's output folder (pytest's basetemp); the README shows a set of them. Each main page is
checked with axe-core (axe-playwright-python): no serious or critical violation.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.browser import launch, needs_chromium, require_chromium
from tests.e2e.harness import ADDED_REQUIREMENT, ControlPlane, wait_for

pytestmark = [pytest.mark.e2e]
WIDE, NARROW = 1280, 390
ENV = "console1"
SETTLE = 300_000  # ms: an environment create, update or rollback with real Airflow


@pytest.fixture(scope="module")
def browser() -> Browser:
    require_chromium()
    with sync_playwright() as playwright:
        started = launch(playwright)
        yield started
        started.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = tmp_path_factory.getbasetemp() / "console-screenshots"
    folder.mkdir(exist_ok=True)
    return folder


def new_page(browser: Browser) -> Page:
    """A tab in its own context (its own cookie jar), like a fresh private window."""
    context = browser.new_context(viewport={"width": WIDE, "height": 900})
    context.set_default_timeout(30_000)
    return context.new_page()


def sign_in(page: Page, plane: ControlPlane, key: dict, *, path: str = "/console") -> None:
    page.goto(f"{plane.url}{path}")
    expect(page).to_have_url(re.compile(r"/console/sign-in\?next="))
    page.get_by_label("Access key ID").fill(key["access_key_id"])
    page.get_by_label("Secret access key").fill(key["secret_access_key"])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{plane.url}{path}")


def shoot(page: Page, folder: Path, name: str) -> None:
    """The page at both widths, whole length."""
    for width in (WIDE, NARROW):
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(50)  # one frame for the layout to follow the new width
        page.screenshot(path=folder / f"{name}-{width}.png", full_page=True)
    page.set_viewport_size({"width": WIDE, "height": 900})


def accessible(page: Page) -> None:
    found = Axe().run(page).response["violations"]
    serious = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in found
               if v["impact"] in ("serious", "critical")]
    assert not serious, serious


def badge(page: Page):
    return page.locator("#status .badge").first


def reloaded(page: Page) -> bool:
    page.reload()
    return True


def csrf_of(page: Page) -> str:
    return page.locator("input[name=csrf]").first.get_attribute("value")


def test_chromium_is_installed() -> None:
    require_chromium()


@needs_chromium
def test_a_new_user_walks_the_whole_path_as_admin(plane, mwaa_keys, browser, shots, dags) -> None:
    page = new_page(browser)
    page.goto(f"{plane.url}/console")
    shoot(page, shots, "01-sign-in")
    accessible(page)
    sign_in(page, plane, mwaa_keys["Admin"])
    accessible(page)

    # 2. create from the bundled examples, and watch it reach AVAILABLE
    page.get_by_role("link", name="Create environment").click()
    accessible(page)
    page.get_by_label("Name").fill(ENV)
    page.get_by_label("DAG folder").fill(str(dags))
    page.get_by_label("Tags").fill("team=console")
    shoot(page, shots, "03-create")
    page.get_by_role("button", name="Create environment").click()
    expect(page).to_have_url(f"{plane.url}/console/environments/{ENV}")
    expect(page.locator("#progress")).to_be_visible()
    expect(badge(page)).to_have_text("CREATING")
    shoot(page, shots, "04-create-progress")
    expect(badge(page)).to_have_text("AVAILABLE", timeout=SETTLE)
    expect(page.locator("#webserver-url")).to_have_text(re.compile(r"^http://127\.0\.0\.1:\d+$"))
    shoot(page, shots, "05-overview")
    accessible(page)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Environments").click()
    expect(page.locator(f"tr[data-environment={ENV}]")).to_contain_text("AVAILABLE")
    shoot(page, shots, "02-environments")
    page.get_by_role("link", name=ENV, exact=True).click()

    # 3. open the Airflow UI from the button, signed in as Admin, and trigger a DAG there
    with page.context.expect_page() as opened:
        page.get_by_role("button", name="Open Airflow UI").click()
    airflow = opened.value
    origin = page.locator("#webserver-url").inner_text()
    airflow.wait_for_url(f"{origin}/", timeout=60_000)
    airflow.goto(f"{origin}/dags/hello_taskflow")
    airflow.wait_for_function("document.body && document.body.innerText.includes('hello_taskflow')", timeout=120_000)
    unpaused = airflow.evaluate("""() => fetch('/api/v2/dags/hello_taskflow', {method: 'PATCH', credentials: 'same-origin',
        headers: {'Content-Type': 'application/json'}, body: JSON.stringify({is_paused: false})}).then(r => r.status)""")
    assert unpaused == 200
    airflow.get_by_role("button", name=re.compile("^Trigger")).first.click()
    airflow.get_by_role("dialog").get_by_role("button", name=re.compile("^Trigger")).click()
    airflow.close()

    # 4. the run's task logs, in the console
    page.get_by_role("link", name="DAG runs").click()
    run = page.locator("#runs tbody tr[data-run]").first
    expect(run).to_be_visible(timeout=60_000)
    wait_for(lambda: reloaded(page) and "success" in page.locator("#runs tbody tr[data-run]").first.inner_text(),
             timeout=180, interval=2, what="the triggered run to succeed")
    shoot(page, shots, "06-runs")
    page.locator("#runs tbody tr[data-run] a").first.click()
    expect(page.locator("#task-instances tr[data-task=load]")).to_contain_text("success")
    page.get_by_role("link", name="Log of load").click()
    expect(page.locator("#task-log")).to_contain_text("total is")
    shoot(page, shots, "07-task-log")

    # 5. update with a new requirement: the plan and its package diff, then apply
    page.get_by_role("link", name="Update").click()
    page.get_by_label("Requirements", exact=True).fill(ADDED_REQUIREMENT)
    page.get_by_role("button", name="Review changes").click()
    plan = page.locator("#plan")
    expect(plan).to_be_visible(timeout=180_000)
    package = ADDED_REQUIREMENT.split("==")[0]
    expect(page.locator("#package-diff")).to_contain_text(package)
    expect(plan).to_contain_text("requirements")
    shoot(page, shots, "08-update-plan")
    accessible(page)
    page.get_by_role("button", name="Apply this plan").click()
    expect(page).to_have_url(f"{plane.url}/console/environments/{ENV}")
    expect(badge(page)).to_have_text("UPDATING")
    expect(badge(page)).to_have_text("AVAILABLE", timeout=SETTLE)

    # 6. the history, and a rollback to revision 1
    page.get_by_role("link", name="History").click()
    expect(page.locator("#revisions tr[data-revision='2']")).to_contain_text("running")
    expect(page.locator("#revisions tr[data-revision='2']")).to_contain_text("requirements")
    shoot(page, shots, "09-history")
    page.get_by_role("button", name="Roll back to revision 1").click()
    expect(page).to_have_url(f"{plane.url}/console/environments/{ENV}")
    expect(badge(page)).to_have_text("AVAILABLE", timeout=SETTLE)
    page.get_by_role("link", name="History").click()
    expect(page.locator("#revisions tr[data-revision='3']")).to_contain_text("running")
    spec = plane.api("GET", f"/api/v1/environments/{ENV}").json()["spec"]
    assert spec["requirements"] is None, spec

    walk_observe_and_operate(page, plane, shots)

    # 10. delete: the open page says the environment is gone
    page.goto(f"{plane.url}/console/environments/{ENV}")
    page.get_by_label(re.compile("to delete this environment")).fill(ENV)
    page.get_by_role("button", name="Delete environment").click()
    expect(page.locator("#status")).to_contain_text("was deleted while this page was open", timeout=120_000)
    assert plane.api("GET", f"/api/v1/environments/{ENV}").status_code == 404
    page.context.close()


def walk_observe_and_operate(page: Page, plane: ControlPlane, shots: Path) -> None:
    """Steps 7 to 9: live logs and a metrics chart, an alert, a snapshot; and the admin page."""
    # 7. live logs: the scheduler's lines, then a line that arrives while the page tails
    page.get_by_role("link", name="Logs").click()
    expect(page.locator("#log-lines")).to_contain_text("scheduler")
    page.get_by_label(re.compile("^Live tail")).check()
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#log-follow")).to_be_attached()
    # a snapshot through the API: the control plane's lines about it reach the open page
    assert plane.api("POST", f"/api/v1/environments/{ENV}/snapshots").status_code in (200, 201, 202)
    expect(page.locator("#log-lines")).to_contain_text("CREATING_SNAPSHOT", timeout=60_000)
    shoot(page, shots, "10-logs")
    accessible(page)
    page.get_by_role("link", name="Metrics").click()
    heartbeat = page.locator("figure.chart svg polyline")
    expect(heartbeat.first).to_be_attached(timeout=60_000)
    shoot(page, shots, "11-metrics")
    accessible(page)
    page.get_by_role("link", name="24h", exact=True).click()
    expect(page.locator("figure.chart svg polyline").first).to_be_attached()

    # 8. an alert rule for this environment
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Alerts").click()
    page.get_by_label("Name", exact=True).fill("console-failures")
    page.get_by_label("Event", exact=True).select_option("dag_run_failed")
    page.get_by_label("Environment", exact=True).select_option(ENV)
    page.get_by_label("Webhook URL", exact=True).fill("http://127.0.0.1:9/hook")
    page.get_by_role("button", name="Create alert").click()
    expect(page.locator("table").first).to_contain_text("console-failures")
    shoot(page, shots, "12-alerts")
    accessible(page)
    assert "console-failures" in [a["name"] for a in plane.api("GET", "/api/v1/alerts").json()]
    plane.api("DELETE", "/api/v1/alerts/console-failures")

    # 9. a snapshot, taken while the environment runs
    plane.wait(ENV)
    page.goto(f"{plane.url}/console/environments/{ENV}/snapshots")
    page.get_by_role("button", name="Take snapshot").click()
    expect(page).to_have_url(f"{plane.url}/console/environments/{ENV}")
    expect(badge(page)).to_have_text("AVAILABLE", timeout=SETTLE)
    page.get_by_role("link", name="Snapshots").click()
    expect(page.locator("tr[data-snapshot]")).to_have_count(2)
    shoot(page, shots, "13-snapshots")
    accessible(page)
    page.get_by_role("link", name="Workers").click()
    shoot(page, shots, "14-workers")

    # the admin page: an access key's secret is shown once
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin").click()
    page.get_by_label("Role", exact=True).select_option("Viewer")
    page.get_by_label("Access key description").fill("console walk")
    page.get_by_role("button", name="Create access key").click()
    secret = page.get_by_label("The secret access key")
    expect(secret).to_be_visible()
    shoot(page, shots, "15-admin")
    accessible(page)
    shown = secret.inner_text().strip()
    page.reload()
    assert shown not in page.content()


@needs_chromium
def test_a_viewer_reads_every_page_and_the_server_refuses_every_write(plane, mwaa_keys, browser, shared_env,
                                                                      shots) -> None:
    env = shared_env
    page = new_page(browser)
    sign_in(page, plane, mwaa_keys["Viewer"])
    before = plane.api("GET", f"/api/v1/environments/{env}").json()
    snapshots = len(plane.api("GET", f"/api/v1/environments/{env}/snapshots").json())
    keys = len(plane.api("GET", "/api/v1/access-keys").json())
    writes = re.compile("^(Create|Delete|Roll back|Take snapshot|Apply|Review changes|Open Airflow|Restore|Clone|Revoke|Send test)")
    for path in ("/console", f"/console/environments/{env}", f"/console/environments/{env}/history",
                 f"/console/environments/{env}/logs", f"/console/environments/{env}/metrics",
                 f"/console/environments/{env}/snapshots", f"/console/environments/{env}/workers", "/console/alerts"):
        assert page.goto(f"{plane.url}{path}").status == 200, path
        assert page.get_by_role("button", name=writes).count() == 0, path
    assert page.get_by_role("link", name="Admin").count() == 0
    for path in ("/console/new", f"/console/environments/{env}/update", "/console/admin",
                 f"/console/environments/{env}/runs"):
        assert page.goto(f"{plane.url}{path}").status == 403, path
        expect(page.locator("h1")).to_have_text("Not allowed")
        expect(page.locator("[role=alert]")).to_contain_text("has role Viewer")
    shoot(page, shots, "16-refused")

    # the same writes sent anyway, each with the session's own CSRF token: the server refuses them all
    token = csrf_of(page)
    for path, form in (("/console/new", {"name": "viewer-made", "dags": "/tmp"}),
                       (f"/console/environments/{env}/update", {"action": "apply", "tags": "a=b"}),
                       (f"/console/environments/{env}/rollback", {"to": "1"}),
                       (f"/console/environments/{env}/delete", {"confirm": env}),
                       (f"/console/environments/{env}/open", {}),
                       (f"/console/environments/{env}/snapshots", {}),
                       ("/console/alerts", {"name": "viewer-alert", "event": "environment_unhealthy",
                                            "all_environments": "on", "webhook": "http://127.0.0.1:9/"}),
                       ("/console/admin/access-keys", {"role": "Admin"})):
        answer = page.request.post(f"{plane.url}{path}", form={"csrf": token, **form}, max_redirects=0)
        assert answer.status == 403, (path, answer.status)
        assert "has role Viewer" in answer.text(), path
    after = plane.api("GET", f"/api/v1/environments/{env}").json()
    assert (after["status"], after["revision"]) == ("AVAILABLE", before["revision"])
    assert len(plane.api("GET", f"/api/v1/environments/{env}/snapshots").json()) == snapshots
    assert "viewer-alert" not in [a["name"] for a in plane.api("GET", "/api/v1/alerts").json()]
    assert len(plane.api("GET", "/api/v1/access-keys").json()) == keys
    assert plane.api("GET", "/api/v1/environments/viewer-made").status_code == 404
    page.context.close()


@needs_chromium
def test_bad_input_gets_a_clear_message_on_the_page_and_changes_nothing(plane, mwaa_keys, browser, shots) -> None:
    admin = mwaa_keys["Admin"]
    page = new_page(browser)
    listed = plane.api("GET", "/api/v1/environments").json()

    # a wrong secret
    page.goto(f"{plane.url}/console/sign-in")
    page.get_by_label("Access key ID").fill(admin["access_key_id"])
    page.get_by_label("Secret access key").fill("not-the-secret")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-error")).to_have_text("the access key ID or the secret access key is wrong")
    assert not [c for c in page.context.cookies() if c["name"] == "hangar_session"]
    expect(page.get_by_label("Access key ID")).to_have_value(admin["access_key_id"])
    shoot(page, shots, "17-sign-in-error")

    # an expired session: back to sign-in, then to the page that was asked for
    sign_in(page, plane, admin)
    cookie = next(c for c in page.context.cookies() if c["name"] == "hangar_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax", cookie
    page.context.add_cookies([{**cookie, "value": "a-session-that-has-ended"}])
    page.goto(f"{plane.url}/console/alerts")
    expect(page).to_have_url(re.compile(r"/console/sign-in\?next=%2Fconsole%2Falerts&expired=1$"))
    expect(page.get_by_role("status")).to_contain_text("Your session has ended")
    page.get_by_label("Access key ID").fill(admin["access_key_id"])
    page.get_by_label("Secret access key").fill(admin["secret_access_key"])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{plane.url}/console/alerts")

    # a form with invalid fields: each message next to its field, nothing created
    page.goto(f"{plane.url}/console/new")
    page.get_by_label("Name").fill("9 not a name")
    page.get_by_label("DAG folder").fill("/no/such/folder")
    page.get_by_label("Airflow configuration overrides").fill("core.parallelism")
    page.get_by_role("button", name="Create environment").click()
    expect(page.locator("#e-airflow_configuration_options")).to_contain_text("is not key=value")
    expect(page.locator("#f-airflow_configuration_options")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-name")).to_have_value("9 not a name")
    page.get_by_label("Airflow configuration overrides").fill("core.parallelism=8")
    page.get_by_role("button", name="Create environment").click()
    expect(page.locator("#e-name")).to_be_visible()
    expect(page.locator("#e-dags")).to_contain_text("does not exist")
    shoot(page, shots, "18-create-errors")
    accessible(page)

    # a request without its CSRF token
    answer = page.request.post(f"{plane.url}/console/new", form={"name": "no-token", "dags": "/tmp"}, max_redirects=0)
    assert answer.status == 403 and "security token" in answer.text()
    assert plane.api("GET", "/api/v1/environments").json() == listed
    page.context.close()
