"""Headless Chromium for page tests: one way to find it, start it and stop it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from tests.services import require

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def chromium() -> Iterator:
    """A Playwright browser on Debian's Chromium; skipped (failed under CI=true) without it.

    No ORM calls inside the block: Playwright runs an event loop in this thread.
    """
    require("Chromium", os.path.exists(CHROMIUM), "install the Debian package 'chromium'")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
