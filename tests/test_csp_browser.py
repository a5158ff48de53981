"""The pages, the admin and the API docs under the Content-Security-Policy, in Chromium.

A page that relied on an inline script or style, or on another host, would break
under the policy; the browser reports each refusal as a `securitypolicyviolation`
event and a console message. Here there must be none, except the one a runbook's
tracking pixel is meant to cause.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from controlplane.catalog.models import Membership, Organization, Role, Service
from runbooks.models import Runbook, Via
from tests.browser import chromium, failed_responses, sign_in
from tests.factories import make_alert, make_rule, make_schedule
from tests.waiting import DEADLINE

PASSWORD = "correct horse battery"
TRACKER = "https://tracker.example/pixel.png"
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"

# Recorded from the first script on every page, before the page's own.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.effectiveDirective} ${e.blockedURI}`);
});
"""

RUNBOOK_BODY = """# Checkout errors

## Symptoms

| route | status |
| :--- | ---: |
| /api/v1/checkout/ | 502 |

## Mitigation

Roll back the last release.
"""


def _runbook(org: Organization, slug: str, body: str) -> Runbook:
    runbook = Runbook(
        organization=org, slug=slug, title=slug, summary="s", body=body, owner="payments"
    )
    runbook.full_clean()
    runbook.save_change(via=Via.ADMIN)
    return runbook


@pytest.mark.integration
def test_the_pages_admin_and_docs_load_with_no_policy_violation(
    transactional_db, live_server, settings
):
    # The live server speaks plain HTTP.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    org = Organization.objects.create(slug="acme", name="Acme")
    get_user_model().objects.create_superuser("root", password=PASSWORD)
    manager = get_user_model().objects.create_user("manager", password=PASSWORD, is_staff=True)
    Membership.objects.create(organization=org, user=manager, role=Role.MANAGER)
    service = Service.objects.create(organization=org, slug="checkout", name="Checkout")
    rule = make_rule(org, "checkout.errors", service=service)
    alert = make_alert(rule, labels={"instance": "a"})
    runbook = _runbook(org, "checkout-errors", RUNBOOK_BODY)
    crontab = CrontabSchedule.objects.create(minute="*/5")
    task = PeriodicTask.objects.create(name="tick", task="controlplane.probe", crontab=crontab)
    view_on_site = f"/admin/r/{ContentType.objects.get_for_model(Runbook).pk}/{runbook.pk}/"
    schedule = make_schedule(org)
    pages = [
        "/",
        "/alerts/",
        alert.get_absolute_url(),
        "/runbooks/",
        runbook.get_absolute_url(),
        "/oncall/",
        schedule.get_absolute_url(),
        "/admin/",
        "/admin/alerting/alert/",
        f"/admin/alerting/alert/{alert.pk}/change/",
        "/admin/runbooks/runbook/",
        f"/admin/runbooks/runbook/{runbook.pk}/change/",
        f"/admin/oncall/oncallschedule/{schedule.pk}/change/",
        f"/admin/catalog/organization/{org.pk}/change/",  # the membership autocomplete
        f"/admin/django_celery_beat/periodictask/{task.pk}/change/",
        "/admin/django_celery_beat/periodictask/add/",
        view_on_site,
        "/api/v1/docs/",
        "/api/v1/redoc/",
    ]
    seen: dict[str, list[str]] = {}
    landed: dict[str, str] = {}
    console: list[str] = []

    # No ORM calls inside: Playwright runs an event loop in this thread.
    with chromium() as browser:
        page = browser.new_page()
        # Swagger UI's bundle is large; a loaded machine takes its time to run it.
        page.set_default_timeout(DEADLINE * 1000)
        page.add_init_script(RECORD_VIOLATIONS)
        page.on("console", lambda message: console.append(message.text))
        failed = failed_responses(page)
        sign_in(page, live_server.url, "/admin/login/?next=/admin/", "root", PASSWORD)
        for path in pages:
            page.goto(f"{live_server.url}{path}")
            page.wait_for_load_state("load")
            if path == "/api/v1/docs/":
                page.wait_for_selector(".opblock", state="attached")
            if path == "/api/v1/redoc/":
                page.wait_for_selector("[data-section-id*='operation/']", state="attached")
            if path.startswith("/admin/catalog/organization/"):
                # Opens Select2's search box, which fetches /admin/autocomplete/.
                page.click(".field-user .select2-selection")
                page.wait_for_selector(".select2-results__option", state="attached")
            if "periodictask" in path:
                page.select_option("#id_crontab", str(crontab.pk))
                seen[f"{path} help"] = [page.inner_text(".field-crontab .help")]
            seen[path] = page.evaluate("window.__violations")
            landed[path] = urlsplit(page.url).path

    violations = {path: found for path, found in seen.items() if not path.endswith(" help")}
    # The one refusal meant to happen: ReDoc's bundle asks for its logo at cdn.redoc.ly.
    assert violations.pop("/api/v1/redoc/") == [f"img-src {REDOC_LOGO}"]
    assert violations == {path: [] for path in pages if path != "/api/v1/redoc/"}
    [refused] = [text for text in console if "Content Security Policy" in text]
    assert REDOC_LOGO in refused
    assert failed == []
    # The view-on-site shortcut took the superuser to the runbook.
    assert landed[view_on_site] == runbook.get_absolute_url()
    for path in (f"/admin/django_celery_beat/periodictask/{task.pk}/change/",):
        # The moved script still runs: the help text says when the crontab runs.
        assert "Translation:" in seen[f"{path} help"][0], seen


@pytest.mark.integration
def test_a_runbook_image_from_another_host_is_not_fetched(transactional_db, live_server, settings):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    org = Organization.objects.create(slug="acme", name="Acme")
    user = get_user_model().objects.create_user("oncall", password=PASSWORD)
    Membership.objects.create(organization=org, user=user, role=Role.VIEWER)
    runbook = _runbook(org, "tracked", f"# Tracked\n\n![x]({TRACKER})\n")
    asked: list[str] = []

    with chromium() as browser:
        page = browser.new_page()
        page.add_init_script(RECORD_VIOLATIONS)
        page.route(
            "**/*",
            lambda route: (
                (asked.append(route.request.url), route.abort())
                if urlsplit(route.request.url).hostname == "tracker.example"
                else route.continue_()
            ),
        )
        page.goto(f"{live_server.url}/accounts/login/?next={runbook.get_absolute_url()}")
        page.fill("#id_username", "oncall")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}{runbook.get_absolute_url()}")
        page.wait_for_load_state("load")
        images = page.eval_on_selector_all(".runbook-body img", "nodes => nodes.map(n => n.src)")
        violations = page.evaluate("window.__violations")

    assert images == [TRACKER]  # the sanitiser kept it: the policy is what stops it
    assert asked == []
    assert violations == [f"img-src {TRACKER}"]
