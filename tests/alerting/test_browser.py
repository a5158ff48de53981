"""The alert pages in a real browser: a long float and long labels stay inside the page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from controlplane.alerting import lifecycle
from controlplane.alerting.models import Alert, Silence
from controlplane.catalog.actors import BEAT
from controlplane.catalog.models import Membership, Organization, Role, Service
from tests.browser import chromium, sign_in
from tests.factories import make_rule

VALUE = 0.379746835443038
EXACT = "0.379746835443038"  # {{ $value }}, kept for the tooltip
SHOWN = "379.7m"  # {{ $value | humanize }}
# Label values as long as a rule may give them: one with no break opportunity at all,
# one of words, one of path segments.
UNBROKEN = "checkoutpaymentsgatewayeuwest" * 12
WORDY = " ".join(["the checkout service behind the payments gateway"] * 8)
PATHLIKE = "/".join(["api", "v1", "organizations", "acme", "services", "checkout"] * 10)
WIDTHS = (1280, 900, 390, 320, 300)

# Measured in the page: the document must not scroll sideways, nor the table inside it.
MEASURE = """() => {
  const table = document.querySelector("table.alerts");
  return {
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    tableOverflow: table ? table.scrollWidth - table.clientWidth : 0,
    text: document.body.innerText,
  };
}"""


@pytest.mark.integration
def test_a_long_value_and_long_labels_stay_inside_the_alert_pages(
    transactional_db, live_server, settings
):

    # The live server speaks plain HTTP.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    org = Organization.objects.create(slug="acme", name="Acme")
    user = get_user_model().objects.create_user("oncall", password="correct horse battery")
    Membership.objects.create(organization=org, user=user, role=Role.VIEWER)
    service = Service.objects.create(
        organization=org, slug="checkout-payments-gateway", name="Checkout", team="payments"
    )
    rule = make_rule(
        org, "checkout.payments.gateway.error-ratio", service=service, severity="critical"
    )
    labels = {"instance": UNBROKEN, "description": WORDY, "path": PATHLIKE}
    summary = f"Error ratio of {UNBROKEN} is {SHOWN}"
    alert, _ = lifecycle.open_alert(rule, "wide", labels, VALUE, {"summary": summary}, actor=BEAT)
    # The widest top line a card can have: the longest state, with both its tags.
    other, _ = lifecycle.open_alert(rule, "acked", {"instance": "a"}, 12345.678, {}, actor=BEAT)
    silence = Silence.objects.create(
        organization=org,
        matchers=[{"name": "instance", "op": "=", "value": "a"}],
        starts_at=timezone.now() - timedelta(minutes=1),
        ends_at=timezone.now() + timedelta(hours=1),
        comment="maintenance",
    )
    Alert.objects.filter(pk=other.pk).update(
        state=Alert.State.ACKNOWLEDGED, is_test=True, silenced_by=silence
    )
    url = alert.get_absolute_url()
    # Where each page shows the alert's value: its row of the list, its facts on its page.
    pages = {
        "list": ("/alerts/", f'tr:has(a[href="{url}"]) .alert-value'),
        "detail": (url, ".alert-facts .alert-value"),
    }
    seen: dict[tuple[str, int], dict] = {}

    # No ORM calls inside: Playwright runs an event loop in this thread.
    with chromium() as browser:
        page = browser.new_page(viewport={"width": WIDTHS[0], "height": 900})
        sign_in(
            page,
            live_server.url,
            "/accounts/login/?next=/alerts/",
            "oncall",
            "correct horse battery",
        )
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            for name, (path, value) in pages.items():
                page.goto(f"{live_server.url}{path}")
                seen[name, width] = page.evaluate(MEASURE)
                seen[name, width]["value"] = page.eval_on_selector(
                    value, "n => [n.textContent.trim(), n.getAttribute('value')]"
                )
                seen[name, width]["visible"] = page.is_visible(value)

    for (name, width), measured in seen.items():
        where = f"{name} at {width} px"
        assert measured["innerWidth"] == width, where
        assert measured["scrollWidth"] <= measured["innerWidth"], where
        assert measured["tableOverflow"] <= 0, f"{where}: the table scrolls inside itself"
        assert measured["value"] == [SHOWN, EXACT], where
        assert measured["visible"], where
        assert EXACT not in measured["text"], where
