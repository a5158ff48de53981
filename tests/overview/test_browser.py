"""The overview in Chromium, on a desktop and phones: nothing wider than the page, every
link of ours answering, nothing the policy refuses, and the sections refreshed in place
when the data changes (with the refresh interval the page carries shortened)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from controlplane.catalog.models import Membership, Role
from controlplane.overview import views
from tests.browser import chromium, failed_responses, sign_in
from tests.factories import make_alert, make_rule, make_runbook, make_user
from tests.overview.world import build
from tests.waiting import DEADLINE

PASSWORD = "correct horse battery"
WIDTHS = (1280, 390, 320)

RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.effectiveDirective} ${e.blockedURI}`);
});
"""

MEASURE = """() => ({
  scrollWidth: document.documentElement.scrollWidth,
  clientWidth: document.documentElement.clientWidth,
  wide: [...document.querySelectorAll("main *")]
    .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
    .map(e => e.tagName + "." + e.className).slice(0, 5),
  links: [...document.querySelectorAll("a[href]")].map(a => a.href),
  violations: window.__violations,
})"""


@contextmanager
def between_browser_calls():
    """ORM calls while Playwright's loop idles in this thread: Django refuses them inside a
    running event loop unless told the caller knows (nothing else runs on it meanwhile)."""
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield
    finally:
        if before is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.mark.integration
def test_the_overview_fits_links_and_refreshes_in_place(
    transactional_db, live_server, settings, org, member, monkeypatch
):
    # The live server speaks plain HTTP.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    settings.TRACE_URL_TEMPLATE = "https://tempo.example/trace/{trace_id}"
    monkeypatch.setattr(views, "REFRESH_SECONDS", 0.5)
    viewer = member(org, Role.VIEWER)
    people = [make_user("alice", staff=False), make_user("bob", staff=False)]
    for person in people:
        Membership.objects.create(organization=org, user=person, role=Role.RESPONDER)
    build(org, "a", people, timezone.now())
    make_runbook(None, "slo-burn-rate")
    fresh_rule = make_rule(org, "a.fresh-trouble", severity="critical")
    seen: dict[int, dict] = {}
    answers: dict[str, int] = {}

    with chromium() as browser:
        page = browser.new_page(viewport={"width": WIDTHS[0], "height": 900})
        page.set_default_timeout(DEADLINE * 1000)
        page.add_init_script(RECORD_VIOLATIONS)
        failed = failed_responses(page)
        sign_in(page, live_server.url, "/accounts/login/?next=/", viewer.username, PASSWORD)
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(f"{live_server.url}/")
            page.wait_for_load_state("load")
            seen[width] = page.evaluate(MEASURE)
        ours = {
            link
            for measured in seen.values()
            for link in measured["links"]
            if urlsplit(link).netloc == urlsplit(live_server.url).netloc
        }
        for link in sorted(ours):
            answers[link.removeprefix(live_server.url)] = page.request.get(link).status

        # The refresh: a new alert shows without a reload, the focus stays where it was.
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(f"{live_server.url}/")
        page.wait_for_selector("[data-refreshes]", state="attached")
        page.focus('a[href="/slos/a-burning/"]')
        with between_browser_calls():
            make_alert(fresh_rule, fingerprint="fresh", annotations={"summary": "just now"})
        page.wait_for_selector("text=a.fresh-trouble")
        page.wait_for_function(
            "document.querySelector('[data-overview-announce]').textContent.includes('5 firing')"
        )
        after = page.evaluate(
            """() => ({
              focused: document.activeElement.getAttribute("href"),
              status: document.querySelector("[data-overview-status]").textContent,
              announced: document.querySelector("[data-overview-announce]").textContent,
              navigations: performance.getEntriesByType("navigation").length,
              violations: window.__violations,
            })"""
        )

    for width, measured in seen.items():
        assert measured["clientWidth"] == width, width
        assert measured["scrollWidth"] <= measured["clientWidth"], (width, measured["wide"])
        assert measured["violations"] == [], width
    assert failed == []
    assert {link: status for link, status in answers.items() if status >= 400} == {}
    assert {
        "/slos/a-burning/",
        "/jobs/a-payroll/",
        "/oncall/a-primary/",
        "/runbooks/a-errors/",
    } <= set(answers)
    assert any(link.startswith("https://tempo.example/trace/") for link in seen[1280]["links"])
    assert after["focused"] == "/slos/a-burning/"
    assert after["status"].startswith("Refreshed at ")
    assert after["announced"].startswith("Overview updated: 5 firing")
    assert after["navigations"] == 1  # no reload
    assert after["violations"] == []
