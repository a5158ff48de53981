"""The SLO pages: the status board and one SLO's page (walls, order, filters, bounded
queries, what each shows, escaping)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from controlplane.alerting.models import Alert
from controlplane.catalog.models import Membership, Role, Service
from controlplane.slo.models import SLO, SLOEvaluation, SLOSnapshot
from runbooks.models import Runbook
from tests.factories import make_slo

pytestmark = pytest.mark.django_db

Status = SLOEvaluation.Status
EVALUATED = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


def make(org, slug: str, evaluation: dict | None = None, **fields) -> SLO:
    """An SLO as the admin would save it, and its evaluation as the evaluator would
    have written it (None: no evaluation row at all, as for an SLO saved another way
    than through slo/editing.py)."""
    slo = make_slo(org, slug, evaluation=evaluation, **fields)
    if evaluation is None:
        SLOEvaluation.objects.filter(slo=slo).delete()
        slo = SLO.objects.get(pk=slo.pk)
    return slo


def evaluated(status: str = Status.OK, budget: float | None = 0.5, **fields) -> dict:
    return {
        "status": status,
        "sli": None if budget is None else 1 - (1 - budget) * 0.001,
        "budget_remaining": budget,
        "burn_rates": {"1h": 2.5, "5m": 3.0},
        "events": 1000.0,
        "evaluated_at": EVALUATED,
        "window_start": EVALUATED - timedelta(days=30),
        "window_end": EVALUATED,
        **fields,
    }


@pytest.fixture
def viewer(client, member, org):
    client.force_login(member(org, Role.VIEWER))
    return client


def text_of(response) -> str:
    """The page as a reader sees it: tags out, entities decoded, spaces collapsed."""
    body = response.content.decode()
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def board_names(client, query: str = "") -> list[str]:
    content = client.get(f"/slos/?{query}").content.decode()
    return re.findall(r'<td class="name"><a href="[^"]*">([^<]*)</a>', content)


# --- the board -----------------------------------------------------------------------


def test_the_pages_need_a_login(client, org):
    make(org, "api-availability")

    for path in ("/slos/", "/slos/api-availability/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith(f"/accounts/login/?next={path}")


def test_the_board_shows_one_row_per_slo_with_its_numbers(viewer, org, service):
    make(
        org,
        "api-availability",
        evaluated(
            Status.WARNING,
            budget=0.4321,
            sli=0.99956789,
            burn_rates={"1h": 3.456, "5m": 1.0},
        ),
        name="API availability",
        service=service,
        objective=99.95,
        window=SLO.Window.D28,
    )

    response = viewer.get("/slos/")
    assert response.status_code == 200
    content = response.content.decode()
    shown = text_of(response)

    assert '<a href="/slos/api-availability/">API availability</a>' in content
    row = shown[shown.index("API availability") :]
    # name, service, objective, window, SLI (floored, one decimal more than the
    # objective), budget remaining (floored), status word and symbol, 1h burn, when.
    assert row.startswith(
        "API availability checkout objective 99.95% window 28d SLI 99.956% "
        "budget 43.2% \u25b2 warning burn 1h 3.46\u00d7 evaluated 15 Mar 12:00"
    )
    assert 'class="slo-status slo-status-warning"' in content


def test_worst_budget_first_by_default_never_evaluated_last_and_by_name(viewer, org):
    make(org, "b-fine", evaluated(budget=0.9), name="B fine")
    make(org, "a-spent", evaluated(Status.EXHAUSTED, budget=-0.2), name="A spent")
    make(org, "c-pending", None, name="C pending")
    make(org, "d-half", evaluated(budget=0.5), name="D half")
    make(org, "e-nodata", evaluated(Status.NO_DATA, budget=None), name="E nodata")

    assert board_names(viewer) == ["A spent", "D half", "B fine", "C pending", "E nodata"]
    assert board_names(viewer, "sort=budget") == board_names(viewer)
    assert board_names(viewer, "sort=name") == [
        "A spent",
        "B fine",
        "C pending",
        "D half",
        "E nodata",
    ]
    assert board_names(viewer, "sort=nonsense") == board_names(viewer)


def test_the_board_filters_by_service_and_status(viewer, org, service):
    other = Service.objects.create(organization=org, slug="search", name="Search")
    make(org, "pay-ok", evaluated(Status.OK), name="Pay ok", service=service)
    make(org, "pay-burn", evaluated(Status.BREACHING, 0.1), name="Pay burn", service=service)
    make(org, "search-ok", evaluated(Status.OK), name="Search ok", service=other)
    make(org, "search-new", None, name="Search new", service=other)
    make(org, "search-queued", evaluated(Status.PENDING, None), name="Search queued", service=other)

    assert board_names(viewer, "service=checkout") == ["Pay burn", "Pay ok"]
    assert board_names(viewer, "status=ok") == ["Pay ok", "Search ok"]
    assert board_names(viewer, "service=search&status=ok") == ["Search ok"]
    assert board_names(viewer, "status=pending") == ["Search new", "Search queued"]
    assert board_names(viewer, "status=breaching") == ["Pay burn"]
    assert len(board_names(viewer, "status=nonsense")) == 5  # an unknown value is ignored
    content = viewer.get("/slos/?service=search&status=ok").content.decode()
    # The form keeps what was chosen, and offers the services that have SLOs.
    assert '<option value="search" selected>' in content
    assert '<option value="ok" selected>' in content
    assert '<option value="checkout">' in content
    # The sort links keep the filters.
    assert 'href="?service=search&amp;status=ok&amp;sort=name"' in content


@pytest.mark.parametrize("status", Status.values)
def test_each_status_reads_without_colour(viewer, org, status):
    budget = None if status in (Status.NO_DATA, Status.PENDING) else 0.5
    make(org, "one", evaluated(status, budget))

    content = viewer.get("/slos/").content.decode()

    cell = re.search(r'<td class="status">(.*?)</td>', content).group(1)
    word = {"insufficient_traffic": "insufficient traffic", "no_data": "no data"}.get(
        status, status
    )
    assert f'slo-status-{status}"' in cell  # the colour
    assert re.search(rf'aria-hidden="true">(\S+)</span> {word}</span>', cell)  # symbol, word


def test_every_status_has_its_own_symbol_word_and_colour():
    from controlplane.slo.views import STATUS_WORDS

    assert set(STATUS_WORDS) == set(Status.values)
    words = [word for word, _ in STATUS_WORDS.values()]
    symbols = [symbol for _, symbol in STATUS_WORDS.values()]
    assert len(set(words)) == len(set(symbols)) == len(Status.values)
    with open("static/css/app.css", encoding="utf-8") as css:
        stylesheet = css.read()
    for status in Status.values:
        assert f".slo-status-{status}" in stylesheet


def test_the_board_hides_other_organisations(viewer, org, other_org):
    make(org, "ours", evaluated())
    make(other_org, "theirs", evaluated(), name="Their secret SLO")

    response = viewer.get("/slos/")

    assert "Their secret SLO" not in response.content.decode()
    assert board_names(viewer) == ["Ours"]


def test_the_board_answers_in_a_constant_number_of_queries(
    viewer, org, service, django_assert_max_num_queries
):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert viewer.get("/slos/").status_code == 200
        return len(captured)

    make(org, "slo-0", evaluated(), service=service)
    few = queries()
    for n in range(1, 40):
        make(org, f"slo-{n}", evaluated(budget=n / 40) if n % 3 else None, service=service)

    # Session, user, memberships, the SLOs with their evaluations, the services.
    with django_assert_max_num_queries(5):
        response = viewer.get("/slos/")
    assert len(board_names(viewer)) == 40
    assert response.content.decode().count("<tr class=") == 40
    assert queries() == few


# --- one SLO -------------------------------------------------------------------------


def test_the_slo_page_shows_objective_sli_window_budget_and_burn_rates(viewer, org, service):
    slo = make(
        org,
        "api-availability",
        evaluated(
            Status.BREACHING,
            budget=0.25,
            sli=0.99975,
            burn_rates={
                "5m": 20.0,
                "30m": 7.5,
                "1h": 15.0,
                "2h": 2.0,
                "6h": 6.5,
                "1d": 1.0,
                "3d": None,
            },
            time_to_exhaustion=timedelta(days=1, hours=5, minutes=30),
            events=123456.0,
        ),
        name="API availability",
        service=service,
        objective=99.9,
        window=SLO.Window.D30,
        min_events=100,
    )

    response = viewer.get(slo.get_absolute_url())
    assert response.status_code == 200
    shown = text_of(response)

    assert "Status \u2716 breaching Breaching (page burn rate)" in shown
    assert "SLI 99.97% objective 99.9%"  # floored, one decimal more than 99.9 in shown
    assert "Budget remaining 25.0%" in shown
    assert "Time to exhaustion 1 d 5 h at the 1h burn rate" in shown
    assert "Events 123456 (alerts need 100)" in shown
    assert "Objective 99.9% error budget 0.1%" in shown
    assert 'Bad events http_requests_total{code=~"5.."} All events http_requests_total' in shown
    assert "Window Rolling 30 days (30 d)" in shown
    assert "last evaluated over 13 Feb 2026 12:00 UTC \u2192 15 Mar 2026 12:00 UTC" in shown
    assert "Budgeting occurrences: good events out of all events" in shown
    # Burn rates per window, in the Workbook's order; no traffic is a dash.
    assert (
        "5m 20.0\u00d7 30m 7.50\u00d7 1h 15.0\u00d7 2h 2.00\u00d7 6h 6.50\u00d7 "
        "1d 1.00\u00d7 3d \u2014" in shown
    )
    # Per tier: severity, windows, factor for 30 days, both burn rates, whether it holds.
    assert "fast page 1h / 5m factor 14.4\u00d7 1h 15.0\u00d7 5m 20.0\u00d7 both above" in shown
    assert "medium page 6h / 30m factor 6\u00d7 6h 6.50\u00d7 30m 7.50\u00d7 both above" in shown
    assert "slow ticket 1d / 2h factor 3\u00d7 1d 1.00\u00d7 2h 2.00\u00d7 quiet" in shown
    assert "long ticket 3d / 6h factor 1\u00d7 3d \u2014 6h 6.50\u00d7 quiet" in shown


def test_a_calendar_slo_shows_its_period_and_the_factors_of_its_length(viewer, org):
    # March 2026 in Paris is 743 hours long: the clocks go forward on the 29th.
    slo = make(
        org,
        "monthly",
        evaluated(window_start=datetime(2026, 2, 28, 23, tzinfo=UTC)),
        window=SLO.Window.MONTH,
        time_zone="Europe/Paris",
        page=False,
    )

    shown = text_of(viewer.get(slo.get_absolute_url()))

    assert "Window Calendar month in Europe/Paris (30 d 23 h)" in shown
    assert "this period 1 Mar 2026 00:00 CET \u2192 1 Apr 2026 00:00 CEST" in shown
    # factor = budget spent * 743 h / long window
    assert "fast page (off) 1h / 5m factor 14.86\u00d7" in shown
    assert "medium page (off) 6h / 30m factor 6.192\u00d7" in shown  # 0.05 * 743 / 6
    assert "slow ticket 1d / 2h factor 3.096\u00d7" in shown
    assert "long ticket 3d / 6h factor 1.032\u00d7" in shown
    assert "Alerts page off, ticket on" in shown


@pytest.mark.parametrize(
    ("fields", "queries"),
    [
        (
            {"kind": SLO.Kind.RATIO, "good": 'req_total{code!~"5.."}', "bad": ""},
            'Good events req_total{code!~"5.."} All events http_requests_total',
        ),
        (
            {
                "kind": SLO.Kind.LATENCY,
                "bad": "",
                "total": "",
                "metric": "http_server_request_duration_seconds",
                "selector": 'route="/api/v1/slos/"',
                "threshold": 0.25,
            },
            "Good: at most 0.25 s http_server_request_duration_seconds_bucket"
            '{route="/api/v1/slos/", le="0.25"} All requests '
            'http_server_request_duration_seconds_count{route="/api/v1/slos/"}',
        ),
        (
            {
                "kind": SLO.Kind.THRESHOLD,
                "bad": "",
                "total": "",
                "expr": "time() - backup_last_success_timestamp_seconds",
                "op": "<",
                "threshold": 86400,
                "budgeting": SLO.Budgeting.TIMESLICES,
            },
            "A slice is good when time() - backup_last_success_timestamp_seconds < 86400",
        ),
    ],
)
def test_the_slo_page_names_the_sli_queries_of_each_kind(viewer, org, fields, queries):
    slo = make(org, "kinds", None, **fields)

    shown = text_of(viewer.get(slo.get_absolute_url()))

    assert queries in shown
    assert "Status \u2026 pending Not evaluated yet" in shown


def test_time_slices_say_their_length_and_target(viewer, org):
    slo = make(
        org,
        "slices",
        None,
        budgeting=SLO.Budgeting.TIMESLICES,
        slice_length=timedelta(minutes=5),
        slice_target=0.95,
    )

    shown = text_of(viewer.get(slo.get_absolute_url()))

    assert (
        "Budgeting time slices of 5 min: good slices out of all slices; "
        "a slice is good at 95% good events or more"
    ) in shown


def test_the_slo_page_links_its_open_alerts_runbook_and_trace(viewer, org, settings):
    settings.TRACE_URL_TEMPLATE = "https://tempo.example/trace/{trace_id}"
    slo = make(org, "linked", evaluated(trace_id="ab" * 16, last_error="source answered 503"))

    def alert(tier, severity, state, fingerprint):
        return Alert.objects.create(
            organization=org,
            slo=slo,
            rule_key="slo.burn_rate",
            fingerprint=fingerprint,
            state=state,
            severity="critical" if severity == "page" else "warning",
            labels={"slo": slo.slug, "severity": severity, "burn_tier": tier,
                    "long_window": "1h", "short_window": "5m"},
            resolved_at=timezone.now() if state == Alert.State.RESOLVED else None,
        )  # fmt: skip

    fast = alert("fast", "page", Alert.State.FIRING, "f1")
    slow = alert("slow", "ticket", Alert.State.ACKNOWLEDGED, "s1")
    gone = alert("medium", "page", Alert.State.RESOLVED, "m1")

    response = viewer.get(slo.get_absolute_url())
    content = response.content.decode()
    shown = text_of(response)

    assert f'href="/alerts/{fast.pk}/">fast burn</a>' in content
    assert f'href="/alerts/{slow.pk}/">slow burn</a>' in content
    assert f'href="/alerts/{gone.pk}/"' not in content
    assert "fast burn Firing page 1h / 5m \u00b7 since" in shown
    # No runbook named: the shared slo-burn-rate page (its address, until it is loaded).
    assert 'class="runbook-link" href="/runbooks/slo-burn-rate/"' in content
    assert 'href="https://tempo.example/trace/abababababababababababababababab"' in content
    assert "Last error source answered 503" in shown


def test_the_slo_page_links_the_runbook_it_names_or_the_shared_one(viewer, org):
    shared = Runbook.objects.create(
        slug="slo-burn-rate", title="SLO error budget burning too fast", summary="s",
        body="b", owner="sre",
    )  # fmt: skip
    own = Runbook.objects.create(
        organization=org, slug="checkout-budget", title="Checkout budget", summary="s",
        body="b", owner="payments",
    )  # fmt: skip
    plain = make(org, "plain", evaluated())
    named = make(org, "named", evaluated(), runbook=own)

    plain_page = viewer.get(plain.get_absolute_url()).content.decode()
    named_page = viewer.get(named.get_absolute_url()).content.decode()

    assert f'href="{shared.get_absolute_url()}">SLO error budget burning too fast</a>' in plain_page
    assert f'href="{own.get_absolute_url()}">Checkout budget</a>' in named_page
    assert viewer.get(shared.get_absolute_url()).status_code == 200


def test_without_a_trace_template_the_trace_id_is_text(viewer, org, settings):
    settings.TRACE_URL_TEMPLATE = ""
    slo = make(org, "traced", evaluated(trace_id="cd" * 16))

    content = viewer.get(slo.get_absolute_url()).content.decode()

    assert f"<code>{'cd' * 16}</code>" in content
    assert "trace-link" not in content


def test_another_organisations_slo_is_404(viewer, org, other_org):
    theirs = make(other_org, "theirs", evaluated(), name="Their secret SLO")

    response = viewer.get(theirs.get_absolute_url())

    assert response.status_code == 404
    assert "Their secret SLO" not in response.content.decode()
    assert viewer.get(f"{theirs.get_absolute_url()}?organization=globex").status_code == 404


def test_a_member_of_two_organisations_reaches_each_slo_of_one_slug(client, member, org, other_org):
    user = member(org, Role.VIEWER)
    Membership.objects.create(organization=other_org, user=user, role=Role.VIEWER)
    client.force_login(user)
    make(org, "availability", evaluated(budget=0.9), name="Acme availability")
    make(other_org, "availability", evaluated(budget=0.1), name="Globex availability")

    board = client.get("/slos/").content.decode()
    assert 'href="/slos/availability/?organization=acme">Acme availability' in board
    assert 'href="/slos/availability/?organization=globex">Globex availability' in board

    globex = client.get("/slos/availability/?organization=globex").content.decode()
    assert "<h1>Globex availability" in globex
    assert (
        'Also named <code>availability</code> in <a href="/slos/availability/?organization=acme">'
        in globex
    )
    # Without the organisation: the first by slug, and a link to the other.
    plain = client.get("/slos/availability/").content.decode()
    assert "<h1>Acme availability" in plain
    assert 'href="/slos/availability/?organization=globex">' in plain
    assert client.get("/slos/availability/?organization=initech").status_code == 404


def test_a_name_or_description_with_markup_shows_as_text(viewer, org):
    slo = make(
        org,
        "markup",
        evaluated(last_error="<img src=x onerror=alert(3)>"),
        name="<script>alert(1)</script>",
        description='<b onclick="alert(2)">bold</b>\nsecond line',
    )

    board = viewer.get("/slos/").content.decode()
    page = viewer.get(slo.get_absolute_url()).content.decode()

    for content in (board, page):
        assert "<script>alert(1)</script>" not in content
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content
    assert '<b onclick="alert(2)">' not in page
    assert "&lt;b onclick=&quot;alert(2)&quot;&gt;bold&lt;/b&gt;<br>second line" in page
    assert "<img src=x" not in page
    assert "<script" not in page.split("<body>")[1]


def test_the_chart_is_svg_drawn_from_the_window_snapshots(viewer, org):
    slo = make(org, "charted", evaluated(budget=0.4))
    start = EVALUATED - timedelta(days=30)
    SLOSnapshot.objects.bulk_create(
        [
            SLOSnapshot(slo=slo, at=start - timedelta(days=2), status="ok", budget_remaining=1.0),
            SLOSnapshot(slo=slo, at=start + timedelta(days=1), status="ok", budget_remaining=0.95),
            SLOSnapshot(slo=slo, at=start + timedelta(days=2), status="ok", budget_remaining=0.9),
            SLOSnapshot(slo=slo, at=start + timedelta(days=3), status="no_data"),
            SLOSnapshot(slo=slo, at=start + timedelta(days=4), status="ok", budget_remaining=0.7),
            SLOSnapshot(slo=slo, at=EVALUATED, status="ok", budget_remaining=-0.2),
        ]
    )

    response = viewer.get(slo.get_absolute_url())
    content = response.content.decode()

    svg = re.search(r"<svg viewBox=\"0 0 640 300\".*?</svg>", content, flags=re.S).group(0)
    line = re.search(r'class="budget-line" d="([^"]+)"', svg).group(1)
    assert line.count("M") == 2  # the no_data snapshot leaves a gap
    assert len(re.findall(r"[ML]\d", line)) == 4  # the one before the window is left out
    assert 'class="ideal-line" d="M' in svg
    assert 'class="zero-line"' in svg
    assert ">\u221225%</text>" in svg  # the axis goes below zero for the overspent point
    assert ">14 Feb</text>" in svg  # the first midnight in the window
    assert "style=" not in svg
    assert "<script" not in svg
    assert "From 95.0% on 14 Feb 12:00 UTC to \u221220.0% on 15 Mar 12:00 UTC." in content


def test_an_slo_without_snapshots_still_draws_its_axes(viewer, org):
    slo = make(org, "fresh", None, window=SLO.Window.WEEK)

    content = viewer.get(slo.get_absolute_url()).content.decode()

    assert 'class="ideal-line"' in content
    assert 'class="budget-line"' not in content
    assert "No measurement in this window yet." in content


def test_the_slo_page_answers_in_a_bounded_number_of_queries(
    viewer, org, django_assert_max_num_queries
):
    slo = make(org, "busy", evaluated())
    SLOSnapshot.objects.bulk_create(
        SLOSnapshot(slo=slo, at=EVALUATED - timedelta(hours=h), status="ok", budget_remaining=0.5)
        for h in range(500)
    )
    for n in range(10):
        Alert.objects.create(
            organization=org, slo=slo, rule_key="slo.burn_rate", fingerprint=f"f{n}",
            severity="critical", labels={"burn_tier": "fast"},
        )  # fmt: skip

    # Session, user, memberships, the SLO, its snapshots, its alerts, the runbook.
    with django_assert_max_num_queries(7):
        response = viewer.get(slo.get_absolute_url())

    assert response.content.decode().count("fast burn</a>") == 10


def test_the_navigation_links_the_board(viewer):
    content = viewer.get("/alerts/").content.decode()

    assert '<a href="/slos/">SLOs</a>' in content


def test_a_turned_off_slo_says_so(viewer, org):
    slo = make(org, "paused", evaluated(), name="Paused", enabled=False)
    make(org, "running", evaluated(), name="Running")

    board = viewer.get("/slos/").content.decode()
    page = text_of(viewer.get(slo.get_absolute_url()))

    assert re.search(r'>Paused</a> <span class="tag">off</span>', board)
    assert '>Running</a> <span class="tag">off</span>' not in board
    assert "This SLO is turned off: it is not evaluated" in page
