"""One real browser: log in, open a runbook from the list, see sections and no script run."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from controlplane.catalog.models import Membership, Organization, Role
from runbooks.models import Runbook, Via
from tests import services
from tests.browser import chromium, failed_responses, sign_in
from tests.runbooks.samples import SECTIONS

HOSTILE_BODY = """# Payments API errors

<script>window.__pwned=1</script>
<img src=x onerror="window.__pwned=2;alert(2)">
<a href="javascript:window.__pwned=3">click me</a>

## Symptoms

Checkout answers `502` to about 3% of requests.

## Triage

```promql
sum(rate(http_server_request_duration_seconds_count{http_response_status_code=~"5.."}[5m])) / sum(rate(http_server_request_duration_seconds_count[5m]))
```

| route | status | share | first seen | trace | notes about what the route does and who owns it |
| --- | --- | --- | --- | --- | --- |
| /api/v1/checkout/ | 502 | 2.9% | 03:12 | 4bf92f3577b34da6a3ce929d0e0e4736 | owned by payments, pages at night |

## Escalation

Page the payments on-call after 15 minutes: averyveryveryverylongwordwithoutanybreakopportunityatallthatmustwrap.

## Mitigation

Roll back the last release.

## Verification

The 5xx share is under 0.1% for 15 minutes.
"""  # noqa: E501 (the long lines are what the narrow screen must cope with)


@pytest.mark.integration
def test_a_runbook_opened_from_the_list_renders_its_sections_and_runs_no_script(
    transactional_db, live_server, settings
):

    # The live server speaks plain HTTP.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    org = Organization.objects.create(slug="acme", name="Acme")
    user = get_user_model().objects.create_user("oncall", password="correct horse battery")
    Membership.objects.create(organization=org, user=user, role=Role.VIEWER)
    runbook = Runbook(
        organization=org,
        slug="payments-errors",
        title="Payments API errors",
        summary="Checkout fails; find the route.",
        body=HOSTILE_BODY,
        owner="payments",
        tags=["api", "payments"],
    )
    runbook.full_clean()
    runbook.save_change(via=Via.ADMIN)
    screenshot = services.run_dir() / "runbook-375.png"
    dialogs: list[str] = []

    # No ORM calls inside: Playwright runs an event loop in this thread.
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        failed = failed_responses(page)
        sign_in(
            page,
            live_server.url,
            "/accounts/login/?next=/runbooks/",
            "oncall",
            "correct horse battery",
        )
        page.click("text=Payments API errors")
        page.wait_for_url(f"{live_server.url}/runbooks/payments-errors/")

        heading_ids = page.eval_on_selector_all(".runbook-body h2", "nodes => nodes.map(n => n.id)")
        pwned = page.evaluate("typeof window.__pwned")
        page.click("text=click me")
        pwned_after_click = page.evaluate("typeof window.__pwned")
        scripts = page.evaluate(
            "document.querySelectorAll('script, [onerror], [onload], [onclick]').length"
        )
        pre_overflow = page.eval_on_selector(
            ".runbook-body pre", "n => getComputedStyle(n).overflowX"
        )

        page.goto(f"{live_server.url}/runbooks/payments-errors/#mitigation")
        target = page.evaluate(
            "document.querySelector(':target') && document.querySelector(':target').id"
        )

        page.set_viewport_size({"width": 375, "height": 812})
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        page.screenshot(path=str(screenshot), full_page=True)

    assert heading_ids == list(SECTIONS)
    assert pwned == pwned_after_click == "undefined"
    assert scripts == 0
    assert dialogs == []
    assert pre_overflow == "auto"  # the stylesheet was served and applied
    assert target == "mitigation"
    assert scroll_width <= 375
    assert failed == []
    assert screenshot.stat().st_size > 10_000
