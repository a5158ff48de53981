"""The job pages: the list of monitors and one monitor's page (walls, order, filters, the
strip of recent runs that reads without colour, bounded queries, escaping, ping URLs)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from controlplane.catalog.models import Membership, Role
from controlplane.jobs import views
from controlplane.jobs.models import JobMonitorState, JobRun
from runbooks.models import Runbook
from tests.factories import make_job

pytestmark = pytest.mark.django_db

Status = JobMonitorState.Status
Outcome = JobRun.Outcome
AT = datetime(2026, 3, 15, 2, 0, tzinfo=UTC)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def viewer(client, member, org):
    client.force_login(member(org, Role.VIEWER))
    return client


@pytest.fixture
def manager(client, member, org):
    client.force_login(member(org, Role.MANAGER))
    return client


def text_of(response) -> str:
    """The page as a reader sees it: tags out, entities decoded, spaces collapsed."""
    body = response.content.decode()
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def names(client, query: str = "") -> list[str]:
    content = client.get(f"/jobs/?{query}").content.decode()
    return re.findall(r'<td class="name"><a href="[^"]*">([^<]*)</a>', content)


def run(monitor, hours: float, outcome: str = Outcome.SUCCESS, **fields) -> JobRun:
    """A run started `hours` after AT, lasting a minute unless told."""
    started = AT + timedelta(hours=hours)
    values = {
        "created_at": started,
        "started_at": started,
        "finished_at": started + timedelta(minutes=1) if outcome else None,
        "duration": timedelta(minutes=1) if outcome else None,
        "outcome": outcome,
        **fields,
    }
    return JobRun.objects.create(monitor=monitor, **values)


# --- the list ------------------------------------------------------------------------------


def test_the_pages_need_a_login(client, org):
    make_job(org)

    for path in ("/jobs/", "/jobs/payroll-export/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith(f"/accounts/login/?next={path}")


def test_the_list_shows_status_last_run_next_expected_and_recent_runs(viewer, org, service):
    monitor = make_job(
        org,
        name="Payroll export",
        service=service,
        state={"status": Status.FAILED, "next_expected": AT + timedelta(days=2)},
    )
    run(monitor, 0)
    run(monitor, 24, Outcome.FAILURE, exit_code=3)

    response = viewer.get("/jobs/")
    assert response.status_code == 200
    content = response.content.decode()
    shown = text_of(response)

    assert '<a href="/jobs/payroll-export/">Payroll export</a>' in content
    row = shown[shown.index("Payroll export 0 2 * * *") :]
    # name and schedule, kind, service, status word and symbol, last run, next expected.
    assert row.startswith(
        "Payroll export 0 2 * * * in UTC kind payroll service checkout \u2716 failed "
        "last run \u2716 failure 16 Mar 02:00 1 min next 17 Mar 02:00"
    )
    assert 'class="job-status job-status-failed"' in content
    strip = re.search(r'<ol class="run-strip"[^>]*>(.*?)</ol>', content).group(1)
    # Oldest first, each run a symbol and a colour, the whole run in its title.
    marks = re.findall(r'<li class="job-run job-run-(\w+)" title="([^"]*)">', strip)
    assert marks == [
        ("success", "success \u00b7 15 Mar 02:00 UTC \u00b7 1 min"),
        ("failure", "failure \u00b7 16 Mar 02:00 UTC \u00b7 1 min \u00b7 exit 3"),
    ]
    assert re.findall(r'aria-hidden="true">(.)</span>', strip) == ["\u2713", "\u2716"]


def test_each_outcome_in_the_strip_reads_without_colour(viewer, org):
    monitor = make_job(org)
    for hours, outcome in enumerate([*Outcome.values, ""]):
        run(monitor, hours, outcome)

    content = viewer.get("/jobs/").content.decode()

    strip = re.search(r'<ol class="run-strip"[^>]*>(.*?)</ol>', content).group(1)
    symbols = re.findall(
        r'aria-hidden="true">(.)</span><span class="job-sr">([a-z ]+?) \u00b7', strip
    )
    words = ["success", "failure", "timed out", "too fast", "missed", "running"]
    assert [word for _, word in symbols] == words
    assert len({symbol for symbol, _ in symbols}) == 6  # a symbol of its own each
    # The legend names every symbol.
    legend = text_of(viewer.get("/jobs/"))
    assert "\u2713 success \u00b7 \u2716 failure \u00b7 \u25f7 timed out" in legend


@pytest.mark.parametrize("status", Status.values)
def test_each_status_reads_without_colour(viewer, org, status):
    make_job(org, state={"status": status})

    content = viewer.get("/jobs/").content.decode()

    cell = re.search(r'<td class="status">(.*?)</td>', content).group(1)
    assert f'job-status-{status}"' in cell  # the colour
    assert re.search(rf'aria-hidden="true">(\S+)</span> {status}</span>', cell)  # symbol, word


def test_every_status_and_outcome_has_its_own_symbol_word_and_colour():
    for words, values in (
        (views.STATUS_WORDS, Status.values),
        (views.OUTCOME_WORDS, [*Outcome.values, views.RUNNING]),
    ):
        assert set(words) == set(values)
        assert (
            len({w for w, _ in words.values()})
            == len({s for _, s in words.values()})
            == len(values)
        )
    with open("static/css/jobs.css", encoding="utf-8") as css:
        stylesheet = css.read()
    for status in Status.values:
        assert f".job-status-{status}" in stylesheet
    for outcome in [*Outcome.values, views.RUNNING]:
        assert f".job-run-{outcome}" in stylesheet


def test_worst_first_then_by_name(viewer, org):
    make_job(org, "a", name="A up", state={"status": Status.UP})
    make_job(org, "b", name="B failed", state={"status": Status.FAILED})
    make_job(org, "c", name="C paused", state={"status": Status.PAUSED})
    make_job(org, "d", name="D late", state={"status": Status.LATE})
    make_job(org, "e", name="E new")
    make_job(org, "f", name="F running", state={"status": Status.RUNNING})

    assert names(viewer) == ["B failed", "D late", "F running", "E new", "A up", "C paused"]


def test_the_list_filters_by_kind_and_status(viewer, org):
    make_job(org, "a", name="Pay up", kind="payroll", state={"status": Status.UP})
    make_job(org, "b", name="Pay failed", kind="payroll", state={"status": Status.FAILED})
    make_job(org, "c", name="Backup up", kind="backup", state={"status": Status.UP})

    assert names(viewer, "kind=payroll") == ["Pay failed", "Pay up"]
    assert names(viewer, "status=up") == ["Backup up", "Pay up"]
    assert names(viewer, "kind=payroll&status=up") == ["Pay up"]
    assert len(names(viewer, "status=nonsense")) == 3  # an unknown value is ignored
    content = viewer.get("/jobs/?kind=backup").content.decode()
    assert '<option value="backup" selected>' in content
    assert '<option value="payroll">' in content


def test_next_expected_says_overdue_and_paused(viewer, org):
    make_job(org, "late", name="Late one", state={"status": Status.LATE,
                                                   "next_expected": AT})  # fmt: skip
    make_job(org, "held", name="Held", state={"status": Status.PAUSED, "next_expected": AT})

    shown = text_of(viewer.get("/jobs/"))

    assert "next 15 Mar 02:00 overdue" in shown
    assert re.search(r"Held .*? next paused", shown)


def test_the_list_hides_other_organisations(viewer, org, other_org):
    make_job(org, "ours", name="Ours")
    make_job(other_org, "theirs", name="Their secret job", kind="secretkind")

    content = viewer.get("/jobs/").content.decode()

    assert "Their secret job" not in content
    assert "secretkind" not in content
    assert names(viewer) == ["Ours"]


def test_the_list_answers_in_a_constant_number_of_queries(
    viewer, org, service, django_assert_max_num_queries
):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert viewer.get("/jobs/").status_code == 200
        return len(captured)

    run(make_job(org, "job-0", service=service), 0)
    few = queries()
    for n in range(1, 40):
        monitor = make_job(org, f"job-{n}", service=service, state={"status": Status.UP})
        for hours in range(n % 30):
            run(monitor, hours)

    # Session, user, memberships, the monitors with their state, their runs, the kinds.
    with django_assert_max_num_queries(6):
        response = viewer.get("/jobs/")
    content = response.content.decode()
    assert content.count('<tr class="job-row-') == 40
    # At most the latest 20 runs a monitor.
    strips = re.findall(r'<ol class="run-strip"[^>]*>(.*?)</ol>', content)
    assert max(strip.count("<li ") for strip in strips) == views.STRIP_RUNS
    assert queries() == few


def test_the_navigation_links_the_list(viewer):
    content = viewer.get("/alerts/").content.decode()

    assert '<a href="/jobs/">Jobs</a>' in content


# --- one monitor ---------------------------------------------------------------------------


def test_the_page_shows_the_definition_the_state_and_the_runs(
    viewer, org, service, settings, monkeypatch
):
    monkeypatch.setattr(views.timezone, "now", lambda: AT + timedelta(hours=1))
    settings.TRACE_URL_TEMPLATE = "https://tempo.example/trace/{trace_id}"
    monitor = make_job(
        org,
        name="Payroll export",
        service=service,
        time_zone="Europe/Paris",
        min_duration=timedelta(minutes=1),
        max_duration=timedelta(hours=2),
        state={
            "status": Status.UP,
            "last_start": AT,
            "last_success": AT + timedelta(minutes=4),
            "next_expected": AT + timedelta(days=1),
        },
    )
    run(monitor, 0, duration=timedelta(minutes=4, seconds=3), exit_code=0, trace_id=TRACE,
        excerpt="exported 42 rows")  # fmt: skip
    run(monitor, -24, Outcome.TIMEOUT, duration=timedelta(hours=2, minutes=5))
    JobRun.objects.create(monitor=monitor, created_at=AT - timedelta(hours=47), outcome="missed")

    response = viewer.get(monitor.get_absolute_url())
    assert response.status_code == 200
    content = response.content.decode()
    shown = text_of(response)

    assert "Status \u2713 up Up" in shown
    assert "Last start 15 Mar 2026 02:00:00 UTC" in shown
    assert "Last success 15 Mar 2026 02:04:00 UTC" in shown
    assert "Next expected run 16 Mar 2026 02:00 UTC grace 15 min" in shown
    assert "overdue" not in shown
    assert "Schedule 0 2 * * * in Europe/Paris" in shown
    assert "Run duration at least 1 min, at most 2 h" in shown
    assert "Kind payroll" in shown
    assert "Service Checkout" in shown
    # Runs newest first: when, outcome, duration, exit code, trace, log.
    assert (
        "15 Mar 2026 02:00:00 UTC \u2713 success duration 4 min 3 s exit code 0 "
        f"trace {TRACE} 16 characters exported 42 rows"
    ) in shown
    assert "14 Mar 2026 02:00:00 UTC \u25f7 timed out duration 2 h 5 min exit code \u2014" in shown
    assert "never started 13 Mar 03:00 UTC \u25cb missed duration \u2014" in shown
    assert f'href="https://tempo.example/trace/{TRACE}"' in content


def test_an_excerpt_with_markup_shows_as_text(viewer, org):
    monitor = make_job(org, name="<script>alert(1)</script>")
    run(monitor, 0, Outcome.FAILURE, excerpt='<script>alert(2)</script>\n<img src=x onerror="x">')

    listing = viewer.get("/jobs/").content.decode()
    page = viewer.get(monitor.get_absolute_url()).content.decode()

    for content in (listing, page):
        assert "<script>alert(1)</script>" not in content
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content
    assert "&lt;script&gt;alert(2)&lt;/script&gt;\n&lt;img src=x onerror=&quot;x&quot;&gt;" in page
    assert "<img src=x" not in page
    assert "<script" not in page.split("<body>")[1]


def test_a_truncated_excerpt_says_so(viewer, org):
    monitor = make_job(org)
    run(monitor, 0, Outcome.FAILURE, excerpt="tail of the log", excerpt_truncated=True)

    shown = text_of(viewer.get(monitor.get_absolute_url()))

    assert "the last 15 characters tail of the log" in shown


def test_managers_get_the_ping_urls_to_copy_others_do_not(client, member, org, settings):
    settings.SITE_URL = "https://cp.example"
    monitor = make_job(org)
    key = monitor.ping_key.key
    client.force_login(member(org, Role.MANAGER))

    shown = text_of(client.get(monitor.get_absolute_url()))

    base = f"https://cp.example/ping/{key}/payroll-export"
    assert f"Success {base} Start {base}/start Failure {base}/fail" in shown
    assert f"curl -fsS -m 10 --retry 5 -o /dev/null {base}/$?" in shown
    for role in (Role.VIEWER, Role.RESPONDER):
        client.force_login(member(org, role))
        page = client.get(monitor.get_absolute_url()).content.decode()
        assert key not in page
        assert "shown to the organisation's managers" in page


def test_the_page_links_its_runbook_or_the_shared_one(viewer, org):
    shared = Runbook.objects.create(
        slug="etl-job-failure", title="ETL job failure", summary="s", body="b", owner="sre"
    )
    own = Runbook.objects.create(
        organization=org, slug="payroll-runbook", title="Payroll runbook", summary="s",
        body="b", owner="payroll",
    )  # fmt: skip
    plain = make_job(org, "plain")
    named = make_job(org, "named", runbook=own)

    plain_page = viewer.get(plain.get_absolute_url()).content.decode()
    named_page = viewer.get(named.get_absolute_url()).content.decode()

    assert f'class="runbook-link" href="{shared.get_absolute_url()}">ETL job failure</a>' in (
        plain_page
    )
    assert f'class="runbook-link" href="{own.get_absolute_url()}">Payroll runbook</a>' in (
        named_page
    )


def test_without_a_trace_template_the_trace_id_is_text(viewer, org, settings):
    settings.TRACE_URL_TEMPLATE = ""
    run(make_job(org), 0, trace_id=TRACE)

    content = viewer.get("/jobs/payroll-export/").content.decode()

    assert f"<code>{TRACE}</code>" in content
    assert "trace-link" not in content


def test_a_paused_monitor_says_so(viewer, org):
    make_job(org, state={"status": Status.PAUSED, "next_expected": AT})

    shown = text_of(viewer.get("/jobs/payroll-export/"))

    assert "This monitor is paused" in shown
    assert "Next expected run paused" in shown


def test_another_organisations_monitor_is_404(viewer, org, other_org):
    theirs = make_job(other_org, "theirs", name="Their secret job")

    response = viewer.get(theirs.get_absolute_url())

    assert response.status_code == 404
    assert "Their secret job" not in response.content.decode()
    assert viewer.get(f"{theirs.get_absolute_url()}?organization=globex").status_code == 404


def test_a_member_of_two_organisations_reaches_each_monitor_of_one_slug(
    client, member, org, other_org
):
    user = member(org, Role.VIEWER)
    Membership.objects.create(organization=other_org, user=user, role=Role.VIEWER)
    client.force_login(user)
    make_job(org, "backup", name="Acme backup")
    make_job(other_org, "backup", name="Globex backup")

    listing = client.get("/jobs/").content.decode()
    assert 'href="/jobs/backup/?organization=acme">Acme backup' in listing
    assert 'href="/jobs/backup/?organization=globex">Globex backup' in listing

    globex = client.get("/jobs/backup/?organization=globex").content.decode()
    assert "<h1>Globex backup" in globex
    assert 'Also named <code>backup</code> in <a href="/jobs/backup/?organization=acme">' in globex
    assert client.get("/jobs/backup/?organization=initech").status_code == 404


def test_the_page_answers_in_a_bounded_number_of_queries(
    viewer, org, django_assert_max_num_queries
):
    monitor = make_job(org)
    for hours in range(120):
        run(monitor, hours)

    # Session, user, memberships, the monitor, its runs, the shared runbook.
    with django_assert_max_num_queries(6):
        response = viewer.get(monitor.get_absolute_url())

    content = response.content.decode()
    assert content.count('<tr class="job-run-row-') == views.RUNS_SHOWN
    assert "The latest 50 runs; <code>GET /api/v1/jobs/payroll-export/runs/</code>" in content


# --- words -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "text"),
    [
        (None, "\u2014"),
        (timedelta(seconds=1.234), "1.2 s"),
        (timedelta(seconds=42), "42 s"),
        (timedelta(minutes=1), "1 min"),
        (timedelta(seconds=243), "4 min 3 s"),
        (timedelta(hours=3), "3 h"),
        (timedelta(hours=2, minutes=5, seconds=59), "2 h 5 min"),
        (timedelta(days=2), "2 d"),
        (timedelta(days=1, hours=4, minutes=30), "1 d 4 h"),
    ],
)
def test_durations_in_words(length, text):
    assert views.duration_text(length) == text


@pytest.mark.parametrize(
    ("shortest", "longest", "text"),
    [
        (None, None, "no limits"),
        (timedelta(minutes=1), None, "at least 1 min"),
        (None, timedelta(hours=2), "at most 2 h"),
        (timedelta(seconds=30), timedelta(hours=2), "at least 30 s, at most 2 h"),
    ],
)
def test_duration_limits_in_words(shortest, longest, text):
    assert views.limits_text(shortest, longest) == text
