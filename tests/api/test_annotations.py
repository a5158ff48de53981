"""`GET /api/v1/annotations/`: the paging timeline as Grafana annotations, read by a
token or a member, behind the organisation walls, in a bounded number of queries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from controlplane.alerting import lifecycle
from controlplane.alerting.models import Alert, AlertEvent, Severity
from controlplane.annotations import unix_ms
from controlplane.api import annotations as view
from controlplane.catalog.actors import Actor
from controlplane.catalog.models import ApiToken, Membership, Role, Service
from controlplane.paging.models import Notification
from tests.factories import (
    make_alert,
    make_notification,
    make_rule,
    make_silence,
    make_slo,
    make_user,
)

pytestmark = pytest.mark.django_db

URL = "/api/v1/annotations/"
FIELDS = [
    "time",
    "timeEnd",
    "title",
    "text",
    "tags",
    "kind",
    "event",
    "url",
    "trace_id",
    "trace_url",
]
SITE = "https://controlplane.example"
TRACES = "https://grafana.example/explore?trace={trace_id}"


@pytest.fixture(autouse=True)
def links(settings):
    settings.SITE_URL = SITE
    settings.TRACE_URL_TEMPLATE = TRACES


@pytest.fixture
def reader(api, read_token):
    return api(read_token)


@pytest.fixture
def base() -> datetime:
    """A whole second two hours ago: the moments below are placed after it."""
    return (timezone.now() - timedelta(hours=2)).replace(microsecond=0)


def at(event: AlertEvent, moment: datetime) -> None:
    AlertEvent.objects.filter(pk=event.pk).update(at=moment)


def ms(moment: datetime) -> int:
    return unix_ms(moment)


def timeline(org, service, base, responder):
    """An alert of api.5xx on checkout opened at base, acknowledged by `responder` a
    minute later, resolved by the system at two minutes."""
    rule = make_rule(org, "api.5xx", service=service, severity=Severity.CRITICAL)
    alert = make_alert(rule, annotations={"summary": "5xx above 2 %"})
    lifecycle.acknowledge(alert, Actor.user(responder), note="looking")
    lifecycle.resolve(alert, actor=Actor.system("beat"), note="condition cleared")
    for minutes, kind in enumerate(("opened", "acknowledged", "resolved")):
        at(alert.events.get(kind=kind), base + timedelta(minutes=minutes))
    alert.refresh_from_db()
    return alert


def test_an_alert_timeline_reads_as_three_annotations(reader, org, service, member, base):
    responder = member(org, Role.RESPONDER, username="dana")
    alert = timeline(org, service, base, responder)
    page = f"{SITE}/alerts/{alert.pk}/"

    response = reader.get(URL)

    assert response.status_code == 200
    rows = response.json()
    assert [list(row) for row in rows] == [FIELDS] * 3
    assert [(r["kind"], r["event"]) for r in rows] == [
        ("alert", "opened"),
        ("alert", "acknowledged"),
        ("alert", "resolved"),
    ]
    assert [r["time"] for r in rows] == [ms(base + timedelta(minutes=m)) for m in range(3)]
    assert [r["timeEnd"] for r in rows] == [r["time"] for r in rows]
    opened, acknowledged, resolved = rows
    assert opened["title"] == "api.5xx opened (critical)"
    assert opened["text"].startswith("5xx above 2 %")
    # The acknowledger as the alert page names them: the username, not an id or address.
    assert acknowledged["title"] == "api.5xx acknowledged by dana"
    assert acknowledged["text"] == "5xx above 2 %\nlooking"
    assert resolved["title"] == "api.5xx resolved by system (beat)"
    assert resolved["text"].endswith("condition cleared")
    for row in rows:
        assert row["url"] == page
        assert set(row["tags"]) >= {
            "kind:alert",
            f"event:{row['event']}",
            "severity:critical",
            "service:checkout",
            "rule:api.5xx",
            "organization:acme",
        }
    assert opened["trace_id"] == alert.events.get(kind="opened").trace_id
    if opened["trace_id"]:
        assert opened["trace_url"] == TRACES.replace("{trace_id}", opened["trace_id"])


def test_trace_ids_are_linked_to_the_viewer(reader, org, base):
    alert = make_alert(make_rule(org))
    AlertEvent.objects.filter(alert=alert).update(trace_id="ab" * 16, at=base)
    make_notification(alert, trace_id="cd" * 16, sent_at=base + timedelta(seconds=5))

    rows = reader.get(URL).json()

    assert [(r["kind"], r["trace_id"], r["trace_url"]) for r in rows] == [
        ("alert", "ab" * 16, TRACES.replace("{trace_id}", "ab" * 16)),
        ("notification", "cd" * 16, TRACES.replace("{trace_id}", "cd" * 16)),
    ]


def test_without_a_trace_viewer_the_link_is_empty(reader, org, settings):
    settings.TRACE_URL_TEMPLATE = ""
    alert = make_alert(make_rule(org))
    AlertEvent.objects.filter(alert=alert).update(trace_id="ab" * 16)

    [row] = reader.get(URL).json()

    assert (row["trace_id"], row["trace_url"]) == ("ab" * 16, "")


def test_notifications_sent_and_given_up(reader, org, service, base):
    alert = make_alert(make_rule(org, "api.5xx", service=service))
    AlertEvent.objects.filter(alert=alert).update(at=base)
    make_notification(
        alert, channel_name="ops-slack", channel_kind="slack", sent_at=base + timedelta(minutes=1)
    )
    make_notification(
        alert,
        "dead",
        step=1,
        attempts=5,
        next_attempt_at=base + timedelta(minutes=2),
        last_error="gave up after 5 attempts: 503",
    )
    # Neither sent nor given up yet: nothing to draw.
    make_notification(alert, "pending", step=2)
    make_notification(alert, "failed", step=3, next_attempt_at=base + timedelta(minutes=3))

    rows = reader.get(URL, {"kind": "notification"}).json()

    assert [(r["event"], r["time"]) for r in rows] == [
        ("sent", ms(base + timedelta(minutes=1))),
        ("given_up", ms(base + timedelta(minutes=2))),
    ]
    sent, dead = rows
    assert sent["title"] == "api.5xx: trigger sent to ops-slack (slack)"
    assert {"kind:notification", "channel_kind:slack", "message:trigger"} <= set(sent["tags"])
    assert "service:checkout" in sent["tags"]
    assert dead["title"] == "api.5xx: trigger to ops-hook (webhook) given up"
    assert dead["text"].endswith("5 attempts\ngave up after 5 attempts: 503")
    assert sent["url"] == dead["url"] == f"{SITE}/alerts/{alert.pk}/"


def test_a_channel_test_message_is_no_annotation(reader, org):
    Notification.objects.create(
        organization=org,
        channel_name="ops-hook",
        channel_kind="webhook",
        event="test",
        state="sent",
        sent_at=timezone.now(),
        is_test=True,
    )

    assert reader.get(URL).json() == []


def test_a_silence_is_a_band_from_its_start_to_its_end(reader, org, base):
    silence = make_silence(
        org,
        comment="database upgrade",
        matchers=[
            {"name": "service", "op": "=", "value": "checkout"},
            {"name": "instance", "op": "=~", "value": "db-.*"},
        ],
        starts_at=base,
        ends_at=base + timedelta(minutes=90),
    )

    [row] = reader.get(URL).json()

    assert row == {
        "time": ms(base),
        "timeEnd": ms(base + timedelta(minutes=90)),
        "title": "Silence: service=checkout, instance=~db-.*",
        "text": "database upgrade",
        "tags": ["kind:silence", "event:created", "organization:acme", "service:checkout"],
        "kind": "silence",
        "event": "created",
        "url": f"{SITE}/admin/alerting/silence/{silence.pk}/change/",
        "trace_id": "",
        "trace_url": "",
    }


def test_a_silence_overlapping_the_range_is_drawn(reader, org, base):
    make_silence(org, starts_at=base - timedelta(days=3), ends_at=base + timedelta(minutes=1))
    make_silence(org, starts_at=base - timedelta(days=3), ends_at=base - timedelta(days=2))
    window = {"from": str(ms(base)), "to": str(ms(base + timedelta(hours=1)))}

    rows = reader.get(URL, window).json()

    assert [r["timeEnd"] for r in rows] == [ms(base + timedelta(minutes=1))]


# --- the range ---------------------------------------------------------------------------


def test_the_range_in_milliseconds_includes_both_ends(reader, org, base):
    alert = make_alert(make_rule(org))
    lifecycle.resolve(alert, actor=Actor.system("beat"))
    at(alert.events.get(kind="opened"), base)
    at(alert.events.get(kind="resolved"), base + timedelta(minutes=10))

    def events(start, end) -> list[str]:
        query = {"from": str(ms(start)), "to": str(ms(end))}
        response = reader.get(URL, query)
        assert response.status_code == 200, response.json()
        return [row["event"] for row in response.json()]

    assert events(base, base + timedelta(minutes=10)) == ["opened", "resolved"]
    assert events(base + timedelta(milliseconds=1), base + timedelta(minutes=10)) == ["resolved"]
    assert events(base, base + timedelta(minutes=9)) == ["opened"]
    assert events(base - timedelta(hours=1), base - timedelta(minutes=1)) == []


def test_iso_times_are_accepted_too(reader, org, base):
    alert = make_alert(make_rule(org))
    at(alert.events.get(), base)
    query = {
        "from": (base - timedelta(minutes=1)).isoformat(),
        "to": (base + timedelta(minutes=1)).astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }

    rows = reader.get(URL, query).json()

    assert [row["time"] for row in rows] == [ms(base)]


def test_by_default_the_last_day(reader, org):
    alert = make_alert(make_rule(org))
    at(alert.events.get(), timezone.now() - timedelta(hours=25))

    assert reader.get(URL).json() == []


# --- the filters -------------------------------------------------------------------------


@pytest.fixture
def mixed(org, service, base):
    """One of each kind on checkout's rule api.5xx, and an alert of another service."""
    other = Service.objects.create(organization=org, slug="search", name="Search")
    alert = make_alert(make_rule(org, "api.5xx", service=service))
    at(alert.events.get(), base)
    make_notification(alert, sent_at=base + timedelta(minutes=1))
    elsewhere = make_alert(make_rule(org, "search.latency", service=other), "fp-2")
    at(elsewhere.events.get(), base + timedelta(minutes=2))
    make_silence(
        org,
        matchers=[{"name": "rule", "op": "=", "value": "api.5xx"}],
        starts_at=base + timedelta(minutes=3),
    )
    make_silence(
        org,
        matchers=[{"name": "service", "op": "=", "value": "search"}],
        starts_at=base + timedelta(minutes=4),
    )
    return alert


def drawn(client, **query) -> list[tuple[str, str]]:
    response = client.get(URL, query)
    assert response.status_code == 200, response.json()
    return [(row["kind"], row["title"]) for row in response.json()]


@pytest.mark.parametrize(
    ("query", "kinds"),
    [
        ({}, ["alert", "notification", "alert", "silence", "silence"]),
        ({"kind": "alert"}, ["alert", "alert"]),
        ({"kind": "alert,silence"}, ["alert", "alert", "silence", "silence"]),
        ({"kind": ["notification", "silence"]}, ["notification", "silence", "silence"]),
        ({"kind": ""}, ["alert", "notification", "alert", "silence", "silence"]),
    ],
)
def test_kinds_are_chosen_repeated_or_comma_separated(reader, mixed, query, kinds):
    assert [kind for kind, _ in drawn(reader, **query)] == kinds


def test_a_service_filter_keeps_its_alerts_and_the_silences_that_may_cover_them(reader, mixed):
    assert drawn(reader, service="checkout") == [
        ("alert", "api.5xx opened (warning)"),
        ("notification", "api.5xx: trigger sent to ops-hook (webhook)"),
        ("silence", "Silence: rule=api.5xx"),
    ]
    assert [kind for kind, _ in drawn(reader, service="search")] == ["alert", "silence", "silence"]
    assert len(drawn(reader, service="checkout,search")) == 5


def test_a_rule_filter(reader, mixed):
    assert [kind for kind, _ in drawn(reader, rule="search.latency")] == ["alert", "silence"]


def test_an_slo_filter_keeps_its_burn_rate_alerts(reader, org, base):
    slo = make_slo(org, "checkout-availability")
    alert = make_alert(make_rule(org, "checkout.burn"), labels={"slo": slo.slug})
    Alert.objects.filter(pk=alert.pk).update(slo=slo)
    make_alert(make_rule(org, "checkout.errors"), "fp-2")
    make_silence(org, matchers=[{"name": "slo", "op": "=", "value": "other"}])

    rows = reader.get(URL, {"slo": slo.slug}).json()

    assert [(r["kind"], r["title"]) for r in rows] == [("alert", "checkout.burn opened (warning)")]
    assert "slo:checkout-availability" in rows[0]["tags"]


@pytest.mark.parametrize("job", ["payroll-export", "acme/payroll-export"])
def test_a_job_filter_by_slug_or_as_the_metrics_name_it(reader, org, job):
    make_alert(make_rule(org, "payroll.failure"), labels={"job": "payroll-export"})
    make_alert(make_rule(org, "equipment.failure"), "fp-2", labels={"job": "equipment-sync"})
    make_silence(org, matchers=[{"name": "job", "op": "=", "value": "payroll-export"}])

    rows = reader.get(URL, {"job": job}).json()

    assert [(r["kind"], "job:payroll-export" in r["tags"]) for r in rows] == [
        ("alert", True),
        ("silence", True),
    ]


def test_a_job_of_another_organisation_by_name_matches_nothing(reader, org):
    make_alert(make_rule(org, "payroll.failure"), labels={"job": "payroll-export"})
    make_silence(org, matchers=[{"name": "job", "op": "=", "value": "payroll-export"}])

    assert reader.get(URL, {"job": "globex/payroll-export"}).json() == []


def test_the_limit_keeps_the_latest_in_time_order(reader, org, base):
    rule = make_rule(org)
    for number in range(5):
        alert = make_alert(rule, f"fp-{number}")
        at(alert.events.get(), base + timedelta(minutes=number))

    rows = reader.get(URL, {"limit": "3"}).json()

    assert [row["time"] for row in rows] == [ms(base + timedelta(minutes=m)) for m in (2, 3, 4)]


# --- refused input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "1.5"}, "to"),
        ({"from": "2026-03-29T01:30:00"}, "from"),  # no offset: which 01:30?
        ({"to": "9" * 16}, "to"),  # past the year 9999
        ({"from": "1774747800000", "to": "1774747799999"}, "from"),
        ({"kind": "alert,incident"}, "kind"),
        ({"kind": ["silence", "page"]}, "kind"),
        ({"limit": "0"}, "limit"),
        ({"limit": "2001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "-5"}, "limit"),
        ({"limit": "9" * 40}, "limit"),
        ({"service": "x" * 201}, "service"),
        ({"organization": "nobody"}, "organization"),
    ],
)
def test_bad_input_is_refused_naming_the_parameter(reader, query, named):
    response = reader.get(URL, query)

    assert response.status_code == 400
    body = response.json()
    assert list(body["errors"]) == [named]
    assert body["detail"].startswith(f"Invalid input. {named}: ")


def test_every_refused_parameter_is_named_at_once(reader):
    response = reader.get(URL, {"from": "x", "kind": "y", "limit": "z"})

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"from", "kind", "limit"}


# --- the walls ---------------------------------------------------------------------------


def furnish(organization, letter: str, base: datetime) -> None:
    """An alert opened and acknowledged, a notification sent and one given up, and a
    silence, each naming the marker `mark-<letter>`."""
    mark = f"mark-{letter}"
    service = Service.objects.create(organization=organization, slug=f"svc-{mark}", name=mark)
    alert = make_alert(
        make_rule(organization, f"rule.{mark}", service=service),
        labels={"marker": mark},
        annotations={"summary": mark},
    )
    lifecycle.acknowledge(alert, Actor.system("beat"), note=mark)
    AlertEvent.objects.filter(alert=alert).update(at=base)
    make_notification(alert, channel_name=mark, sent_at=base)
    make_notification(alert, "dead", step=1, channel_name=mark, last_error=mark)
    make_silence(organization, comment=mark, starts_at=base)


def test_a_token_sees_its_organisation_only(reader, org, other_org, base):
    furnish(org, "a", base)
    furnish(other_org, "b", base)

    response = reader.get(URL)

    assert response.status_code == 200
    assert len(response.json()) == 5
    assert "mark-a" in response.content.decode()
    assert "mark-b" not in response.content.decode()
    assert "globex" not in response.content.decode()


def test_another_organisation_cannot_be_named_by_a_token(reader, org, other_org, base):
    furnish(other_org, "b", base)

    response = reader.get(URL, {"organization": "globex"})

    assert response.status_code == 400
    assert "mark-b" not in response.content.decode()
    # The same answer as for a slug nobody has: nothing tells that globex exists.
    nobody = reader.get(URL, {"organization": "initech"}).json()["errors"]["organization"]
    assert response.json()["errors"]["organization"] == [nobody[0].replace("initech", "globex")]


def test_a_member_of_two_organisations_picks_one(api, org, other_org, member, base):
    furnish(org, "a", base)
    furnish(other_org, "b", base)
    person = member(org, Role.VIEWER, username="two-hats")
    Membership.objects.create(organization=other_org, user=person, role=Role.VIEWER)
    client = api()
    client.force_login(person)

    both = client.get(URL).content.decode()
    acme = client.get(URL, {"organization": "acme"})
    globex = client.get(URL, {"organization": "globex"})

    assert "mark-a" in both
    assert "mark-b" in both
    assert acme.status_code == globex.status_code == 200
    assert "mark-a" in acme.content.decode()
    assert "mark-b" not in acme.content.decode()
    assert "mark-b" in globex.content.decode()
    assert "mark-a" not in globex.content.decode()
    assert all("organization:globex" in row["tags"] for row in globex.json())


def test_callers_without_an_organisation_are_refused(api, org, base):
    furnish(org, "a", base)
    stranger = api()
    stranger.force_login(make_user("stranger"))

    assert api().get(URL).status_code == 401
    assert stranger.get(URL).status_code == 403


def test_a_revoked_token_reads_nothing(api, org, base):
    furnish(org, "a", base)
    token, secret = ApiToken.issue(org, ApiToken.Scope.READ, "grafana")
    token.revoked_at = timezone.now()
    token.save()

    response = api(secret).get(URL)

    assert response.status_code == 401
    assert "mark-a" not in response.content.decode()


def test_writing_is_not_a_thing(api, write_token):
    assert api(write_token).post(URL, {}, format="json").status_code == 405


# --- what is shown ------------------------------------------------------------------------


def test_markup_in_a_label_comes_out_as_data(reader, org):
    script = '<script>alert("x")</script>'
    make_alert(make_rule(org), labels={"instance": script}, annotations={"summary": script})

    response = reader.get(URL)

    assert response["Content-Type"] == "application/json"
    assert response["X-Content-Type-Options"] == "nosniff"
    [row] = json.loads(response.content)
    assert row["text"] == f'{script}\ninstance="{script}"'


def test_no_address_of_a_person_is_shown(reader, org, member, base):
    person = member(org, Role.RESPONDER, username="erin")
    alert = make_alert(make_rule(org))
    lifecycle.acknowledge(alert, Actor.user(person))

    body = reader.get(URL).content.decode()

    assert "by erin" in body
    assert person.email
    assert person.email not in body


def test_a_token_that_acknowledged_is_named_as_the_alert_page_names_it(api, org, write_token):
    alert = make_alert(make_rule(org))
    assert api(write_token).post(f"/api/v1/alerts/{alert.pk}/acknowledge/", {}, format="json")

    rows = api(write_token).get(URL, {"kind": "alert"}).json()

    assert rows[-1]["title"] == "queue.depth acknowledged by API token 'writer' (#{})".format(
        ApiToken.objects.get(name="writer").pk
    )


# --- the cost ------------------------------------------------------------------------------


def crowd(org, base, alerts: int) -> None:
    """`alerts` alerts over two services and two SLOs, each opened, acknowledged by one
    of several people or tokens and resolved, with a notification sent and one given up,
    and a silence per ten alerts."""
    services = [
        Service.objects.create(organization=org, slug=f"svc-{n}", name=f"S{n}") for n in range(2)
    ]
    slos = [make_slo(org, f"slo-{n}") for n in range(2)]
    people = [make_user(f"person-{n}") for n in range(5)]
    tokens = [ApiToken.issue(org, ApiToken.Scope.WRITE, f"t{n}")[0] for n in range(3)]
    actors_ = [*(Actor.user(p) for p in people), *(Actor.token(t) for t in tokens)]
    rules = [make_rule(org, f"rule.{n}", service=services[n % 2]) for n in range(7)]
    for number in range(alerts):
        rule = rules[number % len(rules)]
        alert = make_alert(rule, f"fp-{number}", labels={"job": f"job-{number % 3}"})
        Alert.objects.filter(pk=alert.pk).update(slo=slos[number % 2])
        lifecycle.acknowledge(alert, actors_[number % len(actors_)])
        lifecycle.resolve(alert, actor=Actor.system("beat"))
        AlertEvent.objects.filter(alert=alert).update(at=base + timedelta(seconds=number))
        make_notification(alert, sent_at=base + timedelta(seconds=number))
        make_notification(alert, "dead", step=1)
        if number % 10 == 0:
            make_silence(org, starts_at=base)


@pytest.mark.parametrize("alerts", [3, 120])
def test_the_query_count_does_not_grow_with_the_data(
    reader, org, base, alerts, django_assert_max_num_queries
):
    crowd(org, base, alerts)

    # The token and its last use, the timeline, its actors (people, tokens), the
    # ledger, the silences.
    with django_assert_max_num_queries(7):
        response = reader.get(URL, {"limit": "2000"})

    assert response.status_code == 200
    assert len(response.json()) == alerts * 5 + len(range(0, alerts, 10))


def test_a_member_with_filters_costs_the_same_few_queries(
    api, org, member, base, django_assert_max_num_queries
):
    crowd(org, base, 60)
    client = api()
    client.force_login(member(org, Role.VIEWER))
    query = {"organization": "acme", "service": "svc-0", "slo": "slo-0,slo-1", "job": "job-1"}

    # The session and its user, the memberships, the organisation named, the timeline,
    # its actors (people, tokens), the ledger, the silences.
    with django_assert_max_num_queries(9):
        response = client.get(URL, query)

    assert response.status_code == 200
    rows = response.json()
    assert rows
    assert all("service:svc-0" in r["tags"] for r in rows if r["kind"] != "silence")
    assert all("job:job-1" in r["tags"] for r in rows if r["kind"] != "silence")


# --- the schema ----------------------------------------------------------------------------


def test_the_schema_documents_the_answer_and_the_parameters(api):
    schema = api().get("/api/v1/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/annotations/"]["get"]

    names = {parameter["name"] for parameter in operation["parameters"]}
    assert {"from", "to", "kind", "service", "rule", "slo", "job", "limit"} <= names
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer["type"] == "array"
    component = answer["items"]["$ref"].rsplit("/", 1)[1]
    properties = schema["components"]["schemas"][component]
    assert list(properties["properties"]) == FIELDS
    assert set(properties["required"]) == set(FIELDS)
    assert "400" in operation["responses"]


# --- the documentation ---------------------------------------------------------------------


def test_the_documentation_names_every_parameter_field_and_limit():
    doc = (Path(__file__).parents[2] / "docs/observability/annotations.md").read_text()

    for parameter in view.PARAMETERS:
        assert f"| `{parameter.name}` |" in doc, parameter.name
    for field in FIELDS:
        assert f'"{field}":' in doc, field
    assert f"1 to {view.MOST}" in doc
    assert f"| {view.DEFAULT_LIMIT} |" in doc
    assert "uid: controlplane-api" in doc
    assert "yesoreyeram-infinity-datasource" in doc
