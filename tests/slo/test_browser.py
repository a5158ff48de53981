"""The SLO pages in a real browser, on a desktop and a phone: nothing wider than the page,
the chart readable, every link of ours answering, and nothing the policy refuses."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from controlplane.alerting.models import Alert
from controlplane.catalog.models import Membership, Organization, Role, Service
from controlplane.slo.models import SLO, SLOEvaluation, SLOSnapshot
from runbooks.models import Runbook
from tests.browser import chromium, failed_responses, sign_in
from tests.factories import make_slo

PASSWORD = "correct horse battery"
# The brief's desktop and phone, a tablet, and the narrowest phones.
WIDTHS = (1280, 900, 390, 320)
# A name with no break opportunity, and a selector as long as a team may write.
UNBROKEN = "checkoutpaymentsgatewayavailability" * 4
SELECTOR = (
    'http_server_request_duration_seconds_count{service_name="checkout-payments-gateway",'
    'http_route="/api/v1/organizations/{organization}/services/{service}/checkout/",'
    'http_response_status_code=~"5.."}'
)

RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.effectiveDirective} ${e.blockedURI}`);
});
"""

# Measured in the page: the document must not scroll sideways, nor a table inside it;
# the chart fits, and its labels keep a readable size.
MEASURE = """() => {
  const overflowing = [...document.querySelectorAll("table")]
    .filter(t => t.scrollWidth > t.clientWidth).map(t => t.className);
  const svg = document.querySelector(".budget-chart svg");
  const labels = [...document.querySelectorAll(".chart-labels text")]
    .filter(t => getComputedStyle(t).display !== "none")
    .map(t => t.getBoundingClientRect());
  return {
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    overflowing,
    svgRight: svg ? svg.getBoundingClientRect().right : null,
    labelHeights: labels.map(r => r.height),
    labelsRight: labels.length ? Math.max(...labels.map(r => r.right)) : null,
    labelsLeft: labels.length ? Math.min(...labels.map(r => r.left)) : null,
    links: [...document.querySelectorAll("a[href]")].map(a => a.href),
    violations: window.__violations,
  };
}"""


@pytest.mark.integration
def test_the_board_and_an_slo_page_fit_a_desktop_and_a_phone(
    transactional_db, live_server, settings
):
    # The live server speaks plain HTTP.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    settings.TRACE_URL_TEMPLATE = "https://tempo.example/trace/{trace_id}"
    org = Organization.objects.create(slug="acme", name="Acme")
    user = get_user_model().objects.create_user("oncall", password=PASSWORD)
    Membership.objects.create(organization=org, user=user, role=Role.VIEWER)
    service = Service.objects.create(
        organization=org, slug="checkout-payments-gateway", name="Checkout", team="payments"
    )
    Runbook.objects.create(
        slug="slo-burn-rate", title="SLO error budget burning too fast", summary="s",
        body="b", owner="sre",
    )  # fmt: skip
    now = timezone.now()
    slo = make_slo(
        org,
        "checkout-availability",
        name=f"Checkout {UNBROKEN}",
        description="Payments that reach the gateway succeed. " * 6,
        service=service,
        bad=SELECTOR,
        total=SELECTOR.replace(',http_response_status_code=~"5.."', ""),
        evaluation={
            "status": SLOEvaluation.Status.EXHAUSTED,
            "sli": 0.99872,
            "budget_remaining": -0.28,
            "burn_rates": {"5m": 1234.5, "30m": 20.25, "1h": 15.5, "2h": 9.75, "6h": 7.0,
                           "1d": 3.25, "3d": 1.5},
            "events": 123456789.0,
            "time_to_exhaustion": timedelta(0),
            "evaluated_at": now,
            "window_start": now - timedelta(days=30),
            "window_end": now,
            "trace_id": "ab" * 16,
            "last_error": f"source answered 503 for {SELECTOR}",
        },
    )  # fmt: skip
    # A budget falling through zero over the window, with an hour of no data.
    SLOSnapshot.objects.bulk_create(
        SLOSnapshot(
            slo=slo,
            at=now - timedelta(hours=h),
            status="no_data" if h == 100 else "ok",
            budget_remaining=None if h == 100 else -0.28 + h / 720 * 1.2,
        )
        for h in range(0, 720, 2)
    )
    alert = Alert.objects.create(
        organization=org, slo=slo, rule_key="slo.burn_rate", fingerprint="fast",
        severity="critical", labels={"slo": slo.slug, "severity": "page", "burn_tier": "fast",
                                     "long_window": "1h", "short_window": "5m"},
    )  # fmt: skip
    # One SLO of every status on the board.
    for status in SLOEvaluation.Status.values:
        make_slo(
            org,
            f"status-{status.replace('_', '-')}",
            name=f"Status {status}",
            service=service,
            window=SLO.Window.QUARTER,
            time_zone="Europe/Paris",
            evaluation={"status": status, "budget_remaining": 0.5, "sli": 0.9995,
                        "burn_rates": {"1h": 0.5}, "evaluated_at": now},
        )  # fmt: skip
    pages = ("/slos/", slo.get_absolute_url(), "/slos/status-ok/")
    seen: dict[tuple[str, int], dict] = {}
    answers: dict[str, int] = {}

    # No ORM calls inside: Playwright runs an event loop in this thread.
    with chromium() as browser:
        page = browser.new_page(viewport={"width": WIDTHS[0], "height": 900})
        page.add_init_script(RECORD_VIOLATIONS)
        failed = failed_responses(page)
        sign_in(page, live_server.url, "/accounts/login/?next=/slos/", "oncall", PASSWORD)
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            for path in pages:
                page.goto(f"{live_server.url}{path}")
                page.wait_for_load_state("load")
                seen[path, width] = page.evaluate(MEASURE)
        ours = {
            link
            for measured in seen.values()
            for link in measured["links"]
            if urlsplit(link).netloc == urlsplit(live_server.url).netloc
        }
        for link in sorted(ours):
            answers[
                urlsplit(link).path + ("?" + urlsplit(link).query if urlsplit(link).query else "")
            ] = page.request.get(link).status

    for (path, width), measured in seen.items():
        where = f"{path} at {width} px"
        assert measured["innerWidth"] == width, where
        assert measured["scrollWidth"] <= measured["innerWidth"], where
        assert measured["overflowing"] == [], f"{where}: a table scrolls inside itself"
        assert measured["violations"] == [], where
        if path != "/slos/":
            assert measured["svgRight"] <= width, where
            # Every label inside the chart, none smaller than 9 px on screen.
            assert measured["labelHeights"], where
            assert min(measured["labelHeights"]) >= 9, where
            assert measured["labelsLeft"] >= 0, where
            assert measured["labelsRight"] <= measured["svgRight"] + 0.5, where
    assert failed == []
    links = set(answers)
    assert f"/alerts/{alert.pk}/" in links
    assert "/runbooks/slo-burn-rate/" in links
    assert slo.get_absolute_url() in links
    assert "/slos/?sort=name" in links
    assert {link: status for link, status in answers.items() if status >= 400} == {}
    # The trace link leaves the site: present, not followed.
    assert any(
        link == f"https://tempo.example/trace/{'ab' * 16}"
        for measured in seen.values()
        for link in measured["links"]
    )
