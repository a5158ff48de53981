"""The overview at / over the real database: walls, order, links, traces, the fragment
its script fetches, and a number of queries that does not grow with the data."""

from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from controlplane.alerting.models import Alert
from controlplane.catalog.models import Membership, Organization, Role, SourceHealth
from controlplane.jobs.models import JobMonitor, JobMonitorState
from controlplane.oncall.models import OnCallSchedule, Responder, Shift
from controlplane.overview import reading
from controlplane.paging.models import Notification
from controlplane.slo.models import SLO, SLOEvaluation
from tests.factories import make_rule, make_runbook, make_schedule, make_source, make_user
from tests.overview.world import build, trace

pytestmark = pytest.mark.django_db

TEMPLATE = "https://tempo.example/trace/{trace_id}"


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def links(html: str) -> list[str]:
    parser = Links()
    parser.feed(html)
    return parser.hrefs


@pytest.fixture
def acme(org, member):
    viewer = member(org, Role.VIEWER)
    people = [make_user("alice", staff=False), make_user("bob", staff=False)]
    for person in people:
        Membership.objects.create(organization=org, user=person, role=Role.RESPONDER)
    return viewer, build(org, "a", people, timezone.now())


@pytest.fixture
def globex(other_org, member):
    viewer = member(other_org, Role.VIEWER)
    people = [make_user("carol", staff=False), make_user("dave", staff=False)]
    for person in people:
        Membership.objects.create(organization=other_org, user=person, role=Role.RESPONDER)
    return viewer, build(other_org, "b", people, timezone.now())


def page(client, user, path: str = "/"):
    client.force_login(user)
    return client.get(path)


# --- who sees what ------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in(client):
    for path in ("/", "/?fragment=1"):
        answer = client.get(path)
        assert answer.status_code == 302
        assert urlsplit(answer["Location"]).path == "/accounts/login/"


def test_a_signed_in_account_of_no_organisation_gets_a_friendly_page(client, acme):
    answer = page(client, make_user("newcomer"))
    assert answer.status_code == 200
    text = answer.content.decode()
    assert "You are not a member of any organisation yet" in text
    assert "a.errors" not in text
    assert "data-overview-url" not in text  # nothing to refresh


def test_a_member_sees_its_organisation_and_nothing_of_another(client, acme, globex):
    viewer, own = acme
    _, foreign = globex
    for path in ("/", "/?fragment=1"):
        text = page(client, viewer, path).content.decode()
        for name in own.names:
            assert name in text, (path, name)
        for name in [*foreign.names, foreign.organization.name]:
            assert name not in text, (path, name)


def test_another_organisations_slug_is_not_found_and_names_nothing_of_it(client, acme, globex):
    viewer, _ = acme
    _, foreign = globex
    answer = page(client, viewer, "/?organization=globex")
    assert answer.status_code == 404
    text = answer.content.decode()
    assert "None of your organisations is called “globex”" in text
    for name in foreign.names:
        assert name not in text
    assert page(client, viewer, "/?organization=globex&fragment=1").status_code == 404


@pytest.mark.parametrize("slug", ["nope", "globex"])
def test_an_unknown_organisation_is_not_refreshed(client, acme, globex, slug):
    viewer, _ = acme
    answer = page(client, viewer, f"/?organization={slug}")
    assert answer.status_code == 404
    text = answer.content.decode()
    # The script refreshes only what carries the address: it would poll a 404 for ever.
    assert "data-overview-url" not in text
    assert "data-refresh-seconds" not in text
    assert 'data-overview-url="/?fragment=1"' in page(client, viewer, "/").content.decode()


def test_a_member_of_two_reads_both_and_may_narrow_to_one(client, acme, globex, member):
    _, own = acme
    both = member(own.organization, Role.VIEWER, username="both")
    Membership.objects.create(organization=globex[1].organization, user=both, role=Role.VIEWER)
    text = page(client, both).content.decode()
    assert all(name in text for name in own.names + globex[1].names)
    # Slugs are unique per organisation only: links name it.
    assert "/slos/a-burning/?organization=acme" in text
    assert "/jobs/b-payroll/?organization=globex" in text
    narrowed = page(client, both, "/?organization=globex").content.decode()
    assert "b.errors" in narrowed
    assert "a.errors" not in narrowed
    assert 'data-overview-url="/?fragment=1&amp;organization=globex"' in narrowed


# --- what comes first ---------------------------------------------------------------------


def test_each_section_comes_in_its_order(acme):
    _, held = acme
    [overview] = reading.read([held.organization], several=False, now=timezone.now())

    firing = [
        (g.severity.word, g.count, [a.rule_key + " " + a.summary for a in g.items])
        for g in overview.alerts.firing
    ]
    assert firing == [
        ("critical", 3, ["a.errors a old-critical summary", "a.errors a new-critical summary",
                         "slo.burn_rate "]),
        ("warning", 1, ["a.latency a warning summary"]),
    ]  # fmt: skip
    assert [
        (g.severity.word, [a.rule_key for a in g.items]) for g in overview.alerts.acknowledged
    ] == [("info", ["a.disk"])]
    assert overview.alerts.tests == 1

    assert [(s.name, s.status.word, s.budget, s.burn) for s in overview.slos.items] == [
        ("a SLO burning", "exhausted", "\u221220.0%", "14.5\u00d7 (1h)"),
        ("a SLO halfway", "ok", "50.0%", "2.00\u00d7 (5m)"),
        ("a SLO healthy", "ok", "80.0%", "2.00\u00d7 (5m)"),
        ("a SLO new", "pending", "\u2014", "\u2014"),
    ]
    assert [(c.word, n) for c, n in overview.slos.by_status] == [
        ("exhausted", 1), ("pending", 1), ("ok", 2)
    ]  # fmt: skip

    assert [(j.name, j.status.word, j.trouble, j.trace_id) for j in overview.jobs.items] == [
        ("a payroll", "failed", "failure", trace(0x130)),  # the run that began the trouble
        ("a backup", "late", "", trace(0x131)),  # no trouble trace: the last run's
    ]
    assert [(s.name, s.on_call, s.next_name, s.uncovered) for s in overview.oncall.items] == [
        ("a empty", (), "", True),
        ("a primary", ("alice",), "bob", False),
    ]
    assert [(n.state.word, n.channel, n.alert_label) for n in overview.notifications.items] == [
        ("gave up", "a-hook", "a.errors"),
        ("retrying", "a-slack", "a.latency"),
    ]
    assert [(s.name, s.last_error) for s in overview.sources.items] == [
        ("a-prom-down", "a refused")
    ]


def test_a_gap_in_the_last_schedule_by_slug_is_listed_and_counted(client, org, member):
    viewer = member(org, Role.VIEWER)
    responder = Responder.objects.create(organization=org, user=make_user("alice", staff=False))
    now = timezone.now()
    for n in range(1, 9):
        schedule = make_schedule(org, f"s{n}", name=f"rota {n}")
        if n < 8:  # the last by slug has nobody on call
            Shift.objects.create(
                schedule=schedule,
                responder=responder,
                start=now - timedelta(hours=1),
                end=now + timedelta(days=3),
            )
    [overview] = reading.read([org], several=False, now=now)
    assert (overview.oncall.count, overview.oncall.uncovered) == (8, 1)
    assert [item.name for item in overview.oncall.items] == [
        "rota 8", "rota 1", "rota 2", "rota 3", "rota 4"
    ]  # fmt: skip
    assert "1 schedules with a gap" in reading.summary([overview])
    text = page(client, viewer).content.decode()
    assert "1 with a gap" in text
    assert 'href="/oncall/s8/">rota 8</a>' in text


def test_dead_notifications_older_than_a_week_are_left_out(acme):
    _, held = acme
    Notification.objects.filter(state="dead").update(
        created_at=timezone.now() - reading.DEAD_WITHIN - timedelta(minutes=1)
    )
    [overview] = reading.read([held.organization], several=False, now=timezone.now())
    assert (overview.notifications.dead, overview.notifications.retrying) == (0, 1)
    assert [n.state.word for n in overview.notifications.items] == ["retrying"]


def test_lists_stop_at_their_first_few_and_link_the_rest(client, acme):
    viewer, held = acme
    rule = make_rule(held.organization, "a.flood", severity="warning")
    Alert.objects.bulk_create(
        Alert(organization=held.organization, rule=rule, rule_key="a.flood", fingerprint=f"f{n}",
              severity="warning", started_at=timezone.now() - timedelta(seconds=n))
        for n in range(12)
    )  # fmt: skip
    [overview] = reading.read([held.organization], several=False, now=timezone.now())
    [_, warnings] = overview.alerts.firing
    assert warnings.count == 13
    assert len(warnings.items) == reading.FIRST
    text = page(client, viewer).content.decode()
    assert 'href="/alerts/?state=firing&amp;severity=warning">All 13 warning alerts firing' in text


# --- links --------------------------------------------------------------------------------


def _flood(organization: Organization, tag: str, n: int) -> None:
    rule = make_rule(organization, f"{tag}.flood", severity="warning")
    Alert.objects.bulk_create(
        Alert(organization=organization, rule=rule, rule_key=rule.key, fingerprint=f"{tag}{i}",
              severity="warning", started_at=timezone.now() - timedelta(seconds=i))
        for i in range(n)
    )  # fmt: skip


def test_a_member_of_two_follows_all_alerts_to_that_organisations_alerts(
    client, acme, globex, member
):
    _, own = acme
    _, foreign = globex
    both = member(own.organization, Role.VIEWER, username="both")
    Membership.objects.create(organization=foreign.organization, user=both, role=Role.VIEWER)
    _flood(own.organization, "a", 7)  # with a.latency: 8 warnings firing in Acme
    _flood(foreign.organization, "b", 9)  # 10 in Globex
    text = page(client, both).content.decode()
    wanted = "All 8 warning alerts firing"
    hrefs = [h for h in links(text) if "severity=warning" in h and "state=firing" in h]
    assert sorted(hrefs) == [
        "/alerts/?state=firing&severity=warning&organization=acme",
        "/alerts/?state=firing&severity=warning&organization=globex",
    ]
    assert f'&amp;severity=warning&amp;organization=acme">{wanted}</a>' in text
    listed = client.get(hrefs[0])
    assert listed.status_code == 200
    rows = listed.content.decode()
    # The list shows the open test alert too, tagged; the overview counts it apart.
    assert rows.count('<td class="rule">') - rows.count('<span class="tag">test</span>') == 8
    keys = ("a.flood", "a.latency", "b.flood", "b.latency")
    assert {key for key in keys if key in rows} == {"a.flood", "a.latency"}
    # The section's heading leads to that organisation's alerts too.
    assert 'href="/alerts/?organization=globex">Open alerts' in text


def test_every_link_on_the_page_answers_the_member(client, acme, settings):
    settings.TRACE_URL_TEMPLATE = TEMPLATE
    viewer, held = acme
    make_runbook(None, "slo-burn-rate")
    hrefs = links(page(client, viewer).content.decode())
    ours = sorted({h for h in hrefs if not urlsplit(h).netloc})
    for alert in held.alerts.values():
        if not alert.is_test:
            assert alert.get_absolute_url() in ours
    expected = {
        "/runbooks/a-errors/",
        "/runbooks/a-slo-burn/",
        "/slos/a-burning/",
        "/jobs/a-payroll/",
        "/jobs/a-backup/",
        "/oncall/a-primary/",
        "/api/v1/sources/a-prom-down/?organization=acme",
        "/alerts/",
        "/slos/",
        "/jobs/",
        "/oncall/",
    }
    assert expected <= set(ours)
    answers = {href: client.get(href).status_code for href in ours}
    assert {href: code for href, code in answers.items() if code != 200} == {}


def test_trace_links_appear_with_a_trace_viewer_only(client, acme, settings):
    viewer, held = acme
    settings.TRACE_URL_TEMPLATE = ""
    text = page(client, viewer).content.decode()
    assert "tempo.example" not in text
    assert "trace<span" not in text  # no trace link of any kind

    settings.TRACE_URL_TEMPLATE = TEMPLATE
    hrefs = set(links(page(client, viewer).content.decode()))
    shown = {
        trace(0x100),  # the oldest critical alert's evaluation
        trace(0x110),  # the burning SLO's evaluation
        trace(0x120),  # the SLO's alert
        trace(0x130),  # the failed job's first bad run
        trace(0x131),  # the late job's last run
        trace(0x140),  # the notification that gave up
        trace(0x141),  # the one retrying
    }
    assert {TEMPLATE.format(trace_id=t) for t in shown} <= hrefs
    # The test alert is not listed, nor its trace.
    assert TEMPLATE.format(trace_id=held.alerts["test"].trace_id) not in hrefs


# --- the fragment -------------------------------------------------------------------------


def test_the_fragment_is_the_sections_alone_and_never_cached(client, acme):
    viewer, _ = acme
    answer = page(client, viewer, "/?fragment=1")
    assert answer.status_code == 200
    text = answer.content.decode()
    assert "{#" not in text
    for outside in ("<html", "<header", "<script"):
        assert outside not in text
    assert "data-overview-sections" in text
    assert "a.errors" in text
    assert "no-store" in answer["Cache-Control"]
    assert 'data-summary="3 firing' not in text  # counted per state, not per group
    assert 'data-summary="4 firing and 1 acknowledged alerts; 1 SLOs burning' in text
    full = page(client, viewer, "/")
    assert "no-store" in full["Cache-Control"]
    assert 'data-refresh-seconds="30"' in full.content.decode()


# --- bounded ------------------------------------------------------------------------------


def _crowd(organization: Organization, n: int, tag: str) -> None:
    """n of every kind the overview lists, in trouble (names start with `tag`)."""
    now = timezone.now()
    rule = make_rule(organization, f"{tag}.errors", severity="critical")
    Alert.objects.bulk_create(
        Alert(organization=organization, rule=rule, rule_key=rule.key, fingerprint=f"{tag}-{i}",
              severity=("critical", "warning", "info")[i % 3],
              state=("firing", "acknowledged")[i % 2], is_test=i % 50 == 0,
              started_at=now - timedelta(seconds=i), trace_id=trace(i))
        for i in range(n)
    )  # fmt: skip
    source = make_source(organization, "http://prometheus.example:9090", name=f"{tag}-prom")
    slos = SLO.objects.bulk_create(
        SLO(organization=organization, slug=f"{tag}-{i}", name=f"{tag} {i}", source=source,
            bad="x", total="y", objective=99.9)
        for i in range(n // 10)
    )  # fmt: skip
    SLOEvaluation.objects.bulk_create(
        SLOEvaluation(slo=slo, status="breaching", budget_remaining=i / 100)
        for i, slo in enumerate(slos)
    )
    monitors = JobMonitor.objects.bulk_create(
        JobMonitor(organization=organization, slug=f"{tag}-{i}", name=f"{tag} {i}",
                   kind="etl", cron="0 2 * * *")
        for i in range(n // 10)
    )  # fmt: skip
    JobMonitorState.objects.bulk_create(
        JobMonitorState(monitor=m, status=("failed", "late")[i % 2]) for i, m in enumerate(monitors)
    )
    OnCallSchedule.objects.bulk_create(
        OnCallSchedule(organization=organization, slug=f"{tag}-{i}", name=f"{tag} {i}",
                       ics_text="x", export_key=f"{tag}-key-{organization.slug}-{i:06d}")
        for i in range(n // 30)
    )  # fmt: skip
    alert = Alert.objects.filter(organization=organization).first()
    Notification.objects.bulk_create(
        Notification(organization=organization, alert=alert, channel_name=f"{tag}-{i}",
                     channel_kind="webhook", event="trigger", step=i,
                     state=("dead", "failed")[i % 2], trace_id=trace(i))
        for i in range(n // 6)
    )  # fmt: skip
    from controlplane.catalog.models import MetricSource

    sources = MetricSource.objects.bulk_create(
        MetricSource(organization=organization, name=f"{tag}-down-{i}", url="http://p.example")
        for i in range(n // 30)
    )
    SourceHealth.objects.bulk_create(
        SourceHealth(source=s, failing_since=now, last_error="refused") for s in sources
    )


def _queries(client, path: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured)


def test_the_number_of_queries_does_not_grow_with_the_data(
    client, org, other_org, member, django_assert_max_num_queries
):
    reader = member(org, Role.VIEWER)
    Membership.objects.create(organization=other_org, user=reader, role=Role.VIEWER)
    client.force_login(reader)
    _crowd(org, 30, "few")
    few = _queries(client, "/")

    _crowd(org, 3000, "many")
    _crowd(other_org, 600, "many")
    with django_assert_max_num_queries(20):
        answer = client.get("/")
    assert answer.status_code == 200
    assert _queries(client, "/") == few
    assert _queries(client, "/?fragment=1") == few
    text = answer.content.decode()
    # 3,030 alerts of Acme: every other one acknowledged, 61 (even) ones tests.
    assert "<strong>1454</strong> firing · <strong>1515</strong> acknowledged" in text
    # The first five of each list of each organisation (six alert lists), not thousands.
    assert text.count('<li class="item') == 2 * (6 * 5 + 5 * 5)


def test_a_superuser_of_hundreds_is_told_how_many_more(client, db):
    Organization.objects.bulk_create(
        Organization(slug=f"org-{i:03d}", name=f"Org {i:03d}") for i in range(250)
    )
    root = get_user_model().objects.create_superuser("root", password="x" * 20)
    client.force_login(root)
    with CaptureQueriesContext(connection) as captured:
        text = client.get("/").content.decode()
    assert len(captured) <= 20
    assert text.count('class="overview-org"') == 10
    assert "240 more organisations above" in text
    assert "and more: add" in text  # the picker names 200 of them


def test_a_superuser_sees_the_first_organisations_and_a_picker(client, db):
    for i in range(14):
        Organization.objects.create(slug=f"org-{i:02d}", name=f"Org {i:02d}")
    root = get_user_model().objects.create_superuser("root", password="x" * 20)
    client.force_login(root)
    with CaptureQueriesContext(connection) as captured:
        text = client.get("/").content.decode()
    assert len(captured) <= 20
    assert text.count('class="overview-org"') == 10
    assert "4 more organisations above" in text
    assert 'href="/?organization=org-13"' in text
    assert client.get("/?organization=org-13").content.decode().count('class="overview-org"') == 1
