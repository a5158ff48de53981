"""GET /api/v1/audit/: the organisation's trail, newest first, filtered and paginated;
for its tokens (read scope included) and managers; nothing of another organisation;
every write refused with a 405 and recorded; the schema says all of it."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.settings import api_settings as drf_settings

from controlplane.audit import reading, recorder, sealing
from controlplane.audit.models import AuditEvent, Pseudonym
from controlplane.catalog.actors import Actor
from controlplane.catalog.models import ApiToken, Role
from tests.audit.helpers import events_of, record_some
from tests.authorization import openapi_schema
from tests.factories import make_rule, make_user

pytestmark = pytest.mark.django_db

AUDIT = "/api/v1/audit/"
PAGE_SIZE = drf_settings.PAGE_SIZE
FIELDS = {
    "id",
    "at",
    "actor",
    "action",
    "object_type",
    "object_id",
    "object_label",
    "diff",
    "request_id",
    "trace_id",
    "seq",
    "prev_hash",
    "hash",
}


def everything(client, query: str = "") -> list[dict]:
    """Every event the caller may read, following `next` page after page."""
    found: list[dict] = []
    url = f"{AUDIT}?{query}"
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        found += body["results"]
        url = body["next"]
    return found


def test_a_token_reads_its_organisations_events_newest_first_with_ids_and_hashes(
    api, org, read_token
):
    rule = make_rule(org, "queue.depth")
    sealing.seal(org.pk)

    body = api(read_token).get(AUDIT).json()

    expected = list(AuditEvent.objects.filter(organization=org).order_by("-at", "-id"))
    assert [row["id"] for row in body["results"]] == [event.pk for event in expected]
    assert body["count"] == len(expected)
    created = next(row for row in body["results"] if row["object_id"] == str(rule.pk))
    assert set(created) == FIELDS
    assert created["object_type"] == "alerting.alertrule"
    assert created["object_label"] == "queue.depth"
    assert created["diff"]["key"] == {"to": "queue.depth"}
    assert isinstance(created["seq"], int)
    assert re.fullmatch(r"[0-9a-f]{64}", created["hash"])


def test_a_token_of_another_organisation_sees_nothing_of_it(api, org, other_org):
    make_rule(org, "ours")
    theirs = ApiToken.issue(other_org, ApiToken.Scope.WRITE, "theirs")[1]
    ours = AuditEvent.objects.filter(organization=org).first()

    rows = everything(api(theirs))

    assert rows  # their own events (their token's creation)
    assert {row["id"] for row in rows}.isdisjoint(
        AuditEvent.objects.filter(organization=org).values_list("pk", flat=True)
    )
    assert api(theirs).get(f"{AUDIT}{ours.pk}/").status_code == 404
    assert all(AuditEvent.objects.get(pk=row["id"]).organization_id == other_org.pk for row in rows)


def test_a_write_token_and_a_manager_read_it_responders_and_viewers_do_not(
    api, org, member, write_token
):
    make_rule(org, "ours")
    manager, responder, viewer = (member(org, role) for role in Role.values)
    sessions = {}
    for user in (manager, responder, viewer):
        client = api()
        client.force_login(user)
        sessions[user.username] = client

    assert api(write_token).get(AUDIT).status_code == 200
    assert sessions[manager.username].get(AUDIT).status_code == 200
    for user in (responder, viewer):
        refused = sessions[user.username].get(AUDIT)
        assert refused.status_code == 403
        assert "managers" in refused.json()["detail"]
    assert api().get(AUDIT).status_code == 401


def test_a_superuser_reads_events_of_no_organisation_too(api, org):
    client = api()
    client.force_login(make_user("root", is_superuser=True))
    erasure = record_some(None, 1)[0]

    rows = everything(client, f"object_type={erasure.object_type}")

    assert erasure.pk in {row["id"] for row in rows}


def test_filters_by_action_object_actor_and_time(api, org, write_token, member):
    token = ApiToken.objects.get(name="writer")
    client = api(write_token)
    rule = make_rule(org, "queue.depth")
    other = make_rule(org, "other.rule")
    client.patch(f"/api/v1/rules/{rule.key}/", {"name": "renamed"}, format="json")
    person = member(org, Role.MANAGER, username="someone")
    by_person = recorder.record(
        "acknowledged", organization_id=org.pk, object_type="alerting.alert", object_id=9,
        actor=Actor.user(person),
    )  # fmt: skip
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    old = recorder.record("updated", organization_id=org.pk, object_type="x.y", at=long_ago)

    def ids(query: str) -> list[int]:
        return [row["id"] for row in everything(client, query)]

    of_rule = ids(f"object_type=alerting.alertrule&object_id={rule.pk}")
    assert of_rule == [event.pk for event in reversed(events_of(rule))]
    assert other.pk not in {AuditEvent.objects.get(pk=pk).object_id for pk in of_rule}
    updated = ids("action=updated&object_type=alerting.alertrule")
    assert [AuditEvent.objects.get(pk=pk).diff["name"]["to"] for pk in updated] == ["renamed"]
    assert ids(f"actor=token:{token.pk}") == [events_of(rule)[-1].pk]
    assert ids(f"actor=user:{Pseudonym.objects.get(user=person).value}") == [by_person.pk]
    assert by_person.pk in ids("actor=user")
    assert ids("action=no.such.action") == []
    assert ids("until=2021-01-01T00:00:00Z") == [old.pk]
    assert old.pk not in ids("since=2021-01-01T00:00:00Z")
    window = ids(f"since={int(long_ago.timestamp())}&until=2020-01-01T01:00:00%2B01:00")
    assert window == [old.pk]  # both ends included; unix seconds and offsets alike


@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        ("since=yesterday", "since", "ISO 8601"),
        ("until=2026-13-45T00:00:00Z", "until", "ISO 8601"),
        ("since=2026-03-29T01:30:00", "since", "offset"),  # no offset: which time?
        ("since=2026-03-02T00:00:00Z&until=2026-03-01T00:00:00Z", "since", "after `until`"),
    ],
)
def test_bad_times_are_refused_naming_the_parameter(api, read_token, query, field, words):
    response = api(read_token).get(f"{AUDIT}?{query}")

    assert response.status_code == 400
    body = response.json()
    assert list(body["errors"]) == [field]
    assert body["detail"].startswith("Invalid input.")
    assert words in body["detail"]


def test_a_page_costs_the_same_queries_whatever_the_number_of_events_on_it(api, org, read_token):
    record_some(org, 120)
    client = api(read_token)
    client.get(AUDIT)  # the token's last use is written once, then quiet for a minute
    total = AuditEvent.objects.filter(organization=org).count()
    last = -(-total // PAGE_SIZE)

    def cost(page: int) -> tuple[int, int]:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"{AUDIT}?page={page}")
        assert response.status_code == 200
        return len(response.json()["results"]), len(queries)

    full, partial = cost(1), cost(last)

    assert full[0] == PAGE_SIZE
    assert 0 < partial[0] < PAGE_SIZE
    assert full[1] == partial[1] <= 4  # the token, the count, the page


def test_pagination_walks_the_whole_trail_once_newest_first(api, org, read_token):
    record_some(org, 2 * PAGE_SIZE + 3)

    first = api(read_token).get(AUDIT).json()
    rows = everything(api(read_token))

    expected = AuditEvent.objects.filter(organization=org).order_by("-at", "-id")
    assert first["count"] == len(rows) == expected.count()
    assert first["next"] is not None
    assert first["previous"] is None
    assert [row["id"] for row in rows] == list(expected.values_list("pk", flat=True))
    assert api(read_token).get(f"{AUDIT}?page=999").status_code == 404


@pytest.mark.parametrize(
    ("method", "attempt"), [("put", "changed"), ("patch", "changed"), ("delete", "deleted")]
)
def test_writing_an_event_is_refused_and_the_attempt_recorded(
    api, org, write_token, method, attempt
):
    token = ApiToken.objects.get(name="writer")
    event = record_some(org, 1)[0]
    before = AuditEvent.objects.filter(pk=event.pk).values().get()

    response = getattr(api(write_token), method)(
        f"{AUDIT}{event.pk}/", {"object_label": "forged"}, format="json",
        HTTP_X_REQUEST_ID="req-forge-0001",
    )  # fmt: skip

    assert response.status_code == 405
    assert "append-only" in response.json()["detail"]
    assert AuditEvent.objects.filter(pk=event.pk).values().get() == before
    refused = AuditEvent.objects.get(action=reading.REFUSED)
    assert refused.actor == f"token:{token.pk}"
    assert (refused.object_id, refused.organization_id) == (str(event.pk), org.pk)
    assert refused.diff == {"attempt": attempt}
    assert refused.request_id == "req-forge-0001"


def test_naming_another_organisations_event_writes_nothing_into_its_trail(
    api, org, other_org, read_token
):
    theirs = record_some(other_org, 1)[0]

    response = api(read_token).delete(f"{AUDIT}{theirs.pk}/")

    assert response.status_code == 405
    refused = AuditEvent.objects.get(action=reading.REFUSED)
    # In the trail of whoever tried, never in the one they named.
    assert refused.organization_id == org.pk
    assert not AuditEvent.objects.filter(organization=other_org, action=reading.REFUSED).exists()


def test_posting_to_the_trail_is_refused_and_recorded(api, org, read_token):
    response = api(read_token).post(AUDIT, {"action": "forged"}, format="json")

    assert response.status_code == 405
    refused = AuditEvent.objects.get(action=reading.REFUSED)
    assert (refused.diff, refused.organization_id) == ({"attempt": "added"}, org.pk)
    assert not AuditEvent.objects.filter(action="forged").exists()


def test_one_event_by_id(api, org, read_token):
    event = record_some(org, 1)[0]

    response = api(read_token).get(f"{AUDIT}{event.pk}/")

    assert response.status_code == 200
    assert response.json()["id"] == event.pk
    assert response.json()["diff"] == event.diff
    assert api(read_token).get(f"{AUDIT}not-a-number/").status_code == 404


def test_the_schema_lists_the_endpoint_its_filters_and_its_fields():
    schema = openapi_schema()
    listing = schema["paths"][AUDIT]["get"]
    one = schema["paths"][f"{AUDIT}{{id}}/"]["get"]

    assert {p["name"] for p in listing["parameters"]} >= {
        "action",
        "object_type",
        "object_id",
        "actor",
        "since",
        "until",
        "page",
    }
    assert set(schema["paths"][AUDIT]) == {"get"}
    assert set(schema["paths"][f"{AUDIT}{{id}}/"]) == {"get"}
    assert one["responses"]["200"]
    event = schema["components"]["schemas"]["AuditEvent"]
    assert set(event["properties"]) == FIELDS
    assert event["properties"]["seq"]["nullable"] is True
    assert event["properties"]["diff"]["type"] == "object"


def test_times_at_the_ends_of_the_calendar_are_answered_not_a_500(api, read_token):
    client = api(read_token)

    before_the_first = client.get(f"{AUDIT}?until=0001-01-01T00:00:00%2B01:00")
    far_ahead = client.get(f"{AUDIT}?since=9999-12-31T23:59:59Z")

    assert before_the_first.status_code == 400
    assert before_the_first.json()["errors"] == {"until": ["That time is out of range."]}
    assert far_ahead.status_code == 200
    assert far_ahead.json()["results"] == []
