"""The job pages in a real browser, on a desktop and a phone: nothing wider than the page,
the strip of runs coloured by outcome and readable without colour, long logs and ping
URLs wrapped, every link of ours answering, and nothing the policy refuses."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from controlplane.catalog.models import Membership, Organization, Role, Service
from controlplane.jobs.models import JobMonitorState, JobRun
from runbooks.models import Runbook
from tests.browser import chromium, failed_responses, sign_in
from tests.factories import make_job

PASSWORD = "correct horse battery"
# The brief's desktop and phone, a tablet, and the narrowest phones.
WIDTHS = (1280, 900, 390, 320)
# A name and a log line with no break opportunity.
UNBROKEN = "payrollexportforeverysubsidiary" * 4
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"

RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.effectiveDirective} ${e.blockedURI}`);
});
"""

# Measured in the page with every log opened: the document must not scroll sideways, nor
# a table inside it; each run in a strip shows a symbol and has a title; the outcomes'
# colours differ.
MEASURE = """() => {
  document.querySelectorAll("details").forEach(d => { d.open = true; });
  const overflowing = [...document.querySelectorAll("table, pre, dd")]
    .filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== "auto")
    .map(e => e.tagName + "." + e.className);
  const marks = [...document.querySelectorAll(".run-strip li")];
  const colour = (outcome) => {
    const mark = document.querySelector(`.run-strip .job-run-${outcome}`);
    return mark ? getComputedStyle(mark).backgroundColor + " " + getComputedStyle(mark).color
                : null;
  };
  return {
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    overflowing,
    marks: marks.length,
    marksWithoutSymbol: marks.filter(m => !m.querySelector("[aria-hidden]").textContent.trim())
      .length,
    marksWithoutTitle: marks.filter(m => !m.title).length,
    marksOutside: marks.filter(m => m.getBoundingClientRect().right > window.innerWidth).length,
    colours: {success: colour("success"), failure: colour("failure"), missed: colour("missed")},
    // What reaches past the right edge (the innermost elements), to say what to fix.
    outside: [...document.querySelectorAll("body *")]
      .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
      .filter(e => ![...e.children]
        .some(c => c.getBoundingClientRect().right > window.innerWidth + 0.5))
      .map(e => e.tagName + "." + e.className).slice(0, 10),
    links: [...document.querySelectorAll("a[href]")].map(a => a.href),
    violations: window.__violations,
  };
}"""


@pytest.mark.integration
def test_the_list_and_a_monitor_page_fit_a_desktop_and_a_phone(
    transactional_db, live_server, settings
):
    # The live server speaks plain HTTP.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    settings.TRACE_URL_TEMPLATE = "https://tempo.example/trace/{trace_id}"
    settings.SITE_URL = "https://control-plane.payroll.example.com"
    org = Organization.objects.create(slug="acme", name="Acme")
    user = get_user_model().objects.create_user("oncall", password=PASSWORD)
    Membership.objects.create(organization=org, user=user, role=Role.MANAGER)
    service = Service.objects.create(
        organization=org, slug="payroll-exports-subsidiaries-europe", name="Payroll", team="hr"
    )
    Runbook.objects.create(
        slug="etl-job-failure", title="ETL job failure", summary="s", body="b", owner="sre"
    )
    now = timezone.now()
    monitor = make_job(
        org,
        "payroll-export",
        name=f"Payroll {UNBROKEN}",
        service=service,
        time_zone="Europe/Paris",
        max_duration=timedelta(hours=2),
        state={"status": JobMonitorState.Status.FAILED, "last_start": now,
               "last_failure": now, "next_expected": now + timedelta(days=1)},
    )  # fmt: skip
    outcomes = [*JobRun.Outcome.values, ""]
    JobRun.objects.bulk_create(
        JobRun(
            monitor=monitor,
            created_at=now - timedelta(days=n),
            started_at=now - timedelta(days=n),
            outcome=outcomes[n % len(outcomes)],
            duration=timedelta(minutes=n + 1),
            exit_code=3 if outcomes[n % len(outcomes)] == "failure" else 0,
            excerpt=f"line {n}\n{UNBROKEN * 10}\n<script>alert({n})</script>",
            trace_id=TRACE,
        )
        for n in range(30)
    )
    # One monitor of every status on the list.
    for status in JobMonitorState.Status.values:
        make_job(org, f"status-{status}", name=f"Status {status}", kind="maintenance",
                 state={"status": status, "next_expected": now})  # fmt: skip
    pages = ("/jobs/", monitor.get_absolute_url())
    seen: dict[tuple[str, int], dict] = {}
    answers: dict[str, int] = {}

    # No ORM calls inside: Playwright runs an event loop in this thread.
    with chromium() as browser:
        page = browser.new_page(viewport={"width": WIDTHS[0], "height": 900})
        page.add_init_script(RECORD_VIOLATIONS)
        failed = failed_responses(page)
        sign_in(page, live_server.url, "/accounts/login/?next=/jobs/", "oncall", PASSWORD)
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
            parts = urlsplit(link)
            answers[parts.path + (f"?{parts.query}" if parts.query else "")] = page.request.get(
                link
            ).status

    for (path, width), measured in seen.items():
        where = f"{path} at {width} px"
        assert measured["innerWidth"] == width, where
        assert measured["scrollWidth"] <= measured["innerWidth"], (where, measured["outside"])
        assert measured["overflowing"] == [], f"{where}: something scrolls inside itself"
        assert measured["violations"] == [], where
        if path == "/jobs/":
            assert measured["marks"] == 20, where  # the latest 20 runs of the one that ran
            assert measured["marksWithoutSymbol"] == measured["marksWithoutTitle"] == 0, where
            assert measured["marksOutside"] == 0, where
            colours = measured["colours"]
            assert len(set(colours.values())) == 3, f"{where}: {colours}"
    assert failed == []
    links = set(answers)
    assert "/runbooks/etl-job-failure/" in links
    assert monitor.get_absolute_url() in links
    assert "/jobs/status-failed/" in links
    assert {link: status for link, status in answers.items() if status >= 400} == {}
    # The trace link leaves the site: present, not followed.
    assert any(
        link == f"https://tempo.example/trace/{TRACE}"
        for measured in seen.values()
        for link in measured["links"]
    )
