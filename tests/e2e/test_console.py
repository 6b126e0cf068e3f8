"""The console in a real Chromium (Debian's, driven by Playwright), against a real control plane
and real Airflow: the whole path of a new user as Admin, a Viewer refused every write, and each
kind of bad input with its message on the page and nothing changed.

Screenshots of every page at 1280 and 390 pixels wide go to `console-screenshots` under the test
session's output folder (pytest's basetemp); the README shows a set of them. Each main page is
checked with axe-core (axe-playwright-python): no serious or critical violation.
"""
from __future__ import annotations

import json
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
    shoot(page, shots, "02-environments")
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
    page.get_by_role("link", name="Overview").click()
    page.get_by_label(re.compile("to delete this environment")).fill(ENV)
    page.get_by_role("button", name="Delete environment").click()
    expect(page.locator("#status")).to_contain_text("was deleted while this page was open", timeout=120_000)
    assert plane.api("GET", f"/api/v1/environments/{ENV}").status_code == 404
    page.context.close()


def walk_observe_and_operate(page: Page, plane: ControlPlane, shots: Path) -> None:
    """Steps 7 to 9 (filled in with the logs, metrics, alerts and snapshots pages)."""
