"""The one-click link and the alert page's paging section in Chromium, under the site's
Content-Security-Policy: the confirm page asks, its button acknowledges; signed in, the
alert page shows the notifications and re-applies the current policy."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from controlplane.alerting import outbox
from controlplane.alerting.models import Alert, AlertEvent
from controlplane.catalog.models import Role
from controlplane.paging import engine, links
from controlplane.paging.models import Escalation, EscalationPolicy, Notification
from tests.browser import chromium, failed_responses, sign_in
from tests.factories import make_alert, make_channel, make_policy, make_rule
from tests.test_csp_browser import RECORD_VIOLATIONS
from tests.waiting import DEADLINE

PASSWORD = "correct horse battery"


@pytest.mark.integration
def test_a_link_is_confirmed_then_acknowledges_and_the_alert_page_re_applies(
    transactional_db, live_server, settings, org, member
):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False  # plain HTTP
    alice = member(org, Role.RESPONDER, username="alice")
    hook = make_channel(org, "ops-hook", "webhook", url="https://hooks.example/h")
    policy = make_policy(org, "ops", steps=[(0, [hook]), (timedelta(hours=1), [hook])])
    alert = make_alert(make_rule(org, escalation_policy=policy), annotations={"summary": "deep"})
    outbox.drain()
    row = Notification.objects.get(alert=alert)
    path = engine.acknowledge_url(row).removeprefix(settings.SITE_URL)
    assert links.read(path.split("/")[-2], alert.pk, timezone.now()).notification_id == row.pk
    EscalationPolicy.objects.filter(pk=policy.pk).update(version=F("version") + 1)
    seen: dict[str, object] = {}

    # No ORM calls inside: Playwright runs an event loop in this thread.
    with chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(DEADLINE * 1000)
        page.add_init_script(RECORD_VIOLATIONS)
        failed = failed_responses(page)
        page.goto(f"{live_server.url}{path}")
        seen["asked"] = page.inner_text("h1")
        seen["confirm violations"] = page.evaluate("window.__violations")
        page.click("form.respond button[type=submit]")
        page.wait_for_selector("text=Nobody else is paged")
        seen["done"] = page.inner_text("h1")
        seen["offers"] = page.inner_text("form.respond button")
        seen["done violations"] = page.evaluate("window.__violations")

        sign_in(page, live_server.url, f"/accounts/login/?next={alert.get_absolute_url()}",
                "alice", PASSWORD)  # fmt: skip
        seen["notifications"] = page.inner_text("table.notifications")
        page.click("text=Re-apply current policy")
        page.wait_for_selector(".messages")
        seen["message"] = page.inner_text(".messages")
        seen["page violations"] = page.evaluate("window.__violations")

    assert seen["asked"] == "Acknowledge this alert?"
    assert seen["done"] == "Acknowledged"
    assert seen["offers"] == "Resolve"
    assert "ops-hook" in seen["notifications"]
    assert "Now on version 2 of the policy (was 1)" in seen["message"]
    assert [seen[f"{name} violations"] for name in ("confirm", "done", "page")] == [[], [], []]
    assert failed == []
    assert Alert.objects.get(pk=alert.pk).state == Alert.State.ACKNOWLEDGED
    assert Escalation.objects.get(alert=alert).policy_version == 2
    kinds = list(alert.events.order_by("pk").values_list("kind", "actor"))
    assert kinds[1:] == [
        (AlertEvent.Kind.ACKNOWLEDGED, f"link:{row.pk}.ops-hook"),
        (AlertEvent.Kind.REAPPLIED, f"user:{alice.pk}"),
    ]
