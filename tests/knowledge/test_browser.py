"""One real browser on a phone's width: the alert catalogue fits the screen, runs no
script, and every link it shows leads somewhere."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.core.management import call_command

from controlplane.catalog.models import Organization, Role
from tests import services
from tests.browser import chromium, failed_responses, sign_in

PAGE = "/docs/observability/runbooks/"
WIDTH = 390


@pytest.mark.integration
def test_the_alert_catalogue_fits_a_phone_and_its_links_resolve(
    transactional_db, live_server, settings, member
):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    call_command("sync_runbooks", verbosity=0)  # the runbook pages it links
    org = Organization.objects.create(slug="acme", name="Acme")
    member(org, Role.VIEWER, username="oncall")
    screenshot = services.run_dir() / "docs-runbooks-390.png"

    # No ORM calls inside: Playwright runs an event loop in this thread.
    with chromium() as browser:
        page = browser.new_page(viewport={"width": WIDTH, "height": 844})
        failed = failed_responses(page)
        sign_in(
            page,
            live_server.url,
            f"/accounts/login/?next={PAGE}",
            "oncall",
            "correct horse battery",
        )
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        toc = page.eval_on_selector_all(".toc a", "nodes => nodes.map(n => n.getAttribute('href'))")
        hrefs = page.eval_on_selector_all(
            "main a[href]", "nodes => nodes.map(n => n.getAttribute('href'))"
        )
        missing_targets = [
            href
            for href in hrefs
            if href.startswith("#")
            and not page.evaluate("id => !!document.getElementById(id)", href[1:])
        ]
        statuses = {}
        for href in sorted({h.split("#")[0] for h in hrefs if h.startswith("/")}):
            statuses[href] = page.request.get(f"{live_server.url}{href}").status
        scripts = page.evaluate("document.querySelectorAll('main script').length")
        page.screenshot(path=str(screenshot), full_page=True)

    assert scroll_width <= WIDTH
    assert "#sloburn_rate" in toc
    assert "#rpo-and-rto-objectives" in toc
    assert missing_targets == []
    assert {"/runbooks/api-5xx/", "/runbooks/slo-objectives/", "/docs/slos/"} <= set(statuses)
    assert {href: status for href, status in statuses.items() if status >= 400} == {}
    assert not [h for h in hrefs if urlsplit(h).path.endswith(".md")]
    assert scripts == 0
    assert failed == []
