"""The console's environments page with 50 environments, in Debian's Chromium: time to first
render (first contentful paint of a cold load, a new browser context) and the p95 of 20 loads;
and the JavaScript and CSS the console ships, gzip-compressed, next to Airflow's own UI's (the
web page a Hangar user otherwise opens), read from an installed Airflow 3 runtime.

The control plane's app is assembled in this process as the server assembles it (admission,
error pages, audit, the console) over a real store holding 50 environments created through the
domain, and served by uvicorn on loopback. The environments are records only: nothing starts
their Airflow (50 environments would need 300 processes on this 2-core machine), so their rows
have no processes listed. Targets: p95 <= 300 ms; assets <= 150 KB compressed.

Run: uv run --extra test python bench/console_load.py --runs 5
"""
from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import FastAPI
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hangar.api import admission, audit  # noqa: E402
from hangar.api import errors as api_errors  # noqa: E402
from hangar.api.console import app as console  # noqa: E402
from hangar.api.console.render import HERE  # noqa: E402
from hangar.backend.local import LocalBackend  # noqa: E402
from hangar.context import Context  # noqa: E402
from hangar.crypto import Envelope  # noqa: E402
from hangar.domain import environments  # noqa: E402
from hangar.domain.access import Role, create_access_key  # noqa: E402
from hangar.logstore.store import LogStore  # noqa: E402
from hangar.runtime.embedded_postgres import EmbeddedPostgres  # noqa: E402
from hangar.schemas.spec import EnvironmentCreate  # noqa: E402
from hangar.settings import Settings  # noqa: E402
from hangar.store.db import open_store  # noqa: E402
from tests.e2e.browser import launch  # noqa: E402
from tests.e2e.harness import free_port  # noqa: E402

SHIPPED = ("console.css", "console.js", "htmx.min.js")


def build(home: Path, count: int) -> tuple[FastAPI, dict]:
    settings = Settings(home=home, celery_broker_url="redis://127.0.0.1:6379/15")  # recorded, never connected
    settings.ensure_dirs()
    ctx = Context(settings=settings, store=open_store(settings.state_dir / "hangar.db"),
                  envelope=Envelope(AESGCM.generate_key(bit_length=256)), postgres=EmbeddedPostgres(settings.pgdata_dir),
                  backend=LocalBackend(interval=1.0, on_health=lambda *_: None), logs=LogStore.from_settings(settings),
                  submit=lambda *_: None)
    dags = home / "dags"
    dags.mkdir()
    for i in range(count):
        environments.create_environment(ctx, request=EnvironmentCreate(
            name=f"team-{i:02d}", dags=str(dags), tags={"team": f"t{i % 7}"}, executor="celery" if i % 3 else "local",
            min_workers=1, max_workers=5))
    app = FastAPI()
    api_errors.install(app)
    admission.install(app)
    audit.install(app)
    console.install(app)
    app.state.ctx, app.state.admin_key = ctx, "unused"
    key = create_access_key(ctx, role=Role.Viewer)
    return app, {"id": key.access_key_id, "secret": key.secret_access_key}


def serve(app: FastAPI) -> str:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}"


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


TIMING = """() => { const n = performance.getEntriesByType('navigation')[0];
  const p = performance.getEntriesByType('paint').find(e => e.name === 'first-contentful-paint');
  return {fcp: p ? p.startTime : null, load: n.loadEventEnd, ttfb: n.responseStart}; }"""


def measure(browser, url: str, key: dict, loads: int) -> dict:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{url}/console/sign-in")
    page.get_by_label("Access key ID").fill(key["id"])
    page.get_by_label("Secret access key").fill(key["secret"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{url}/console")
    state = context.storage_state()
    context.close()
    cold = browser.new_context(viewport={"width": 1280, "height": 900}, storage_state=state)  # signed in, empty cache
    page = cold.new_page()
    page.goto(f"{url}/console", wait_until="load")
    assert page.locator("tr[data-environment]").count() == 50
    page.wait_for_function("performance.getEntriesByType('paint').some(e => e.name === 'first-contentful-paint')")
    first = page.evaluate(TIMING)
    timings = []
    for _ in range(loads):
        page.goto(f"{url}/console", wait_until="load")
        timings.append(page.evaluate(TIMING)["load"])
    cold.close()
    return {"first_render_ms": first["fcp"], "first_load_ms": first["load"], "load_p50_ms": statistics.median(timings),
            "load_p95_ms": p95(timings)}


def gz(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), 9))


def airflow_ui_assets() -> dict | None:
    """Airflow 3's UI bundle (airflow/ui/dist) from a runtime, or from uv's cache of the wheel."""
    roots = [os.environ.get("HANGAR_RUNTIMES_DIR", ""), str(Path.home() / ".hangar" / "runtimes"),
             "/tmp/hangar-test-runtimes-*"]
    candidates = [d for root in filter(None, roots) for d in glob.glob(f"{root}/*/lib/python3.*/site-packages/airflow/ui/dist")]
    candidates += glob.glob(str(Path.home() / ".cache" / "uv" / "archive-v0" / "*" / "airflow" / "ui" / "dist"))
    for dist in candidates:
        files = [Path(p) for p in glob.glob(f"{dist}/**/*", recursive=True) if p.endswith((".js", ".css"))]
        if files:
            versions = glob.glob(f"{dist}/../../../apache_airflow_core-*.dist-info")
            return {"where": dist, "version": Path(versions[0]).name if versions else None, "files": len(files),
                    "gzip_bytes": sum(gz(f) for f in files)}
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--environments", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hangar-console-bench-") as tmp:
        app, key = build(Path(tmp) / "home", args.environments)
        url = serve(app)
        with sync_playwright() as playwright:
            browser = launch(playwright)
            runs = [measure(browser, url, key, args.loads) for _ in range(args.runs)]
            browser.close()
    shipped = {name: gz(HERE / "static" / name) for name in SHIPPED}
    result = {
        "environments": args.environments, "runs": args.runs, "loads_per_run": args.loads,
        "first_render_ms_median": statistics.median(r["first_render_ms"] for r in runs),
        "load_p50_ms_median": statistics.median(r["load_p50_ms"] for r in runs),
        "load_p95_ms_median": statistics.median(r["load_p95_ms"] for r in runs),
        "load_p95_ms_worst": max(r["load_p95_ms"] for r in runs),
        "assets_gzip_bytes": shipped, "assets_gzip_total": sum(shipped.values()),
        "airflow_ui_assets": airflow_ui_assets(),
        "per_run": runs,
    }
    if result["airflow_ui_assets"]:
        result["assets_ratio_to_airflow_ui"] = round(result["assets_gzip_total"] / result["airflow_ui_assets"]["gzip_bytes"], 4)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
