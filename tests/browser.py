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


def sign_in(page, base_url: str, login_path: str, username: str, password: str) -> None:
    """Sign in on a login form (the site's or the admin's) and wait for where its
    `?next=` leads."""
    from urllib.parse import parse_qs, urlsplit

    landing = parse_qs(urlsplit(login_path).query).get("next", ["/"])[0]
    page.goto(f"{base_url}{login_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("[type=submit]")
    page.wait_for_url(f"{base_url}{landing}")


def failed_responses(page) -> list[str]:
    """The URLs the page loads that answer 4xx or 5xx (the favicon aside), as they come."""
    failed: list[str] = []
    page.on(
        "response",
        lambda response: (
            failed.append(response.url)
            if response.status >= 400 and not response.url.endswith("/favicon.ico")
            else None
        ),
    )
    return failed
