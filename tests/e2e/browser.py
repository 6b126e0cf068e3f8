"""Debian's Chromium, driven by Playwright for Python through ``executable_path``, for every test
of what a person sees (the console, MWAA's web login). The tests never download a browser (no
``playwright install``): ``scripts/ensure-chromium`` installs Debian's. Without it they skip,
unless CI is set: then ``test_chromium_is_installed`` fails."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
IN_CI = bool(os.environ.get("CI"))
MISSING_REASON = (f"{CHROMIUM} is not installed (run scripts/ensure-chromium as root, or "
                  "apt-get install -y chromium); the tests never download a browser")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=MISSING_REASON + (" — CI is set: see test_chromium_is_installed" if IN_CI else ""))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]


def launch(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if IN_CI:
        pytest.fail(f"CI is set and {MISSING_REASON}")
    pytest.skip(MISSING_REASON)
