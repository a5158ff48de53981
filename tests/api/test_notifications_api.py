"""The delivery ledger through the API: the caller's organisation's rows, newest first,
filtered; and each alert's JSON listing its latest notifications."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.alerting import outbox
from controlplane.paging import engine
from controlplane.paging.models import Notification
from tests.factories import make_alert, make_channel, make_policy, make_rule

pytestmark = pytest.mark.django_db

URL = "/api/v1/notifications/"
FIELDS = [
    "id",
    "alert",
    "channel",
    "channel_kind",
    "event",
    "step",
    "loop",
    "reminder",
    "state",
    "attempts",
    "next_attempt_at",
    "last_status",
    "last_error",
    "sent_at",
    "trace_id",
    "is_test",
    "created_at",
]


@pytest.fixture
def reader(api, read_token):
    return api(read_token)


@pytest.fixture
def hook(org):
    return make_channel(org, "ops-hook", "webhook", url="https://hooks.example/h")


def ledger(alert, channel, count: int, start=None, **fields) -> list[Notification]:
    """`count` rows of the alert, one a minute from `start`, each its own step."""
    start = start or timezone.now() - timedelta(hours=1)
    return Notification.objects.bulk_create(
        Notification(
            organization_id=channel.organization_id,
            alert=alert,
            channel=channel,
            channel_name=channel.name,
            channel_kind=channel.kind,
            event="trigger",
            step=number,
            created_at=start + timedelta(minutes=number),
            **fields,
        )
        for number in range(count)
    )


def test_the_ledger_written_by_an_escalation_reads_back(reader, org, hook):
    make_policy(org, "ops", steps=[(0, [hook])], is_default=True)
    alert = make_alert(make_rule(org))
    outbox.drain()

    [row] = reader.get(URL).json()["results"]

    assert list(row) == FIELDS
    stored = Notification.objects.get()
    assert row["id"] == stored.pk
    assert (row["alert"], row["channel"], row["channel_kind"]) == (alert.pk, "ops-hook", "webhook")
    assert (row["event"], row["step"], row["loop"], row["reminder"]) == ("trigger", 0, 0, 0)
    assert (row["state"], row["attempts"], row["last_status"], row["sent_at"]) == (
        "pending",
        0,
        None,
        None,
    )
    assert row["trace_id"] == alert.trace_id
    assert row["is_test"] is False
    assert row["next_attempt_at"]
    assert row["created_at"]


def test_newest_first_and_paginated(reader, org, hook):
    alert = make_alert(make_rule(org))
    rows = ledger(alert, hook, 60)

    body = reader.get(URL).json()

    assert body["count"] == 60
    assert [r["step"] for r in body["results"]] == list(range(59, 9, -1))
    assert body["next"].endswith("page=2")
    assert body["results"][0]["id"] == rows[-1].pk


def test_filters(reader, org, hook):
    mail = make_channel(org, "ops-mail", "email", to=["a@example.com"])
    first = make_alert(make_rule(org, "first"), "fp-first")
    second = make_alert(make_rule(org, "second"), "fp-second")
    ledger(first, hook, 2, state="sent")
    ledger(second, hook, 1, state="dead")
    ledger(second, mail, 3, state="pending")
    engine.send_test([mail])

    def found(query: str) -> list[tuple[int, str, str]]:
        response = reader.get(f"{URL}?{query}")
        assert response.status_code == 200, response.json()
        return [(r["alert"] or 0, r["channel"], r["state"]) for r in response.json()["results"]]

    assert found(f"alert={first.pk}") == [(first.pk, "ops-hook", "sent")] * 2
    assert found("state=dead") == [(second.pk, "ops-hook", "dead")]
    # The test notification, written last, comes first.
    assert (
        found("channel=ops-mail")
        == [(0, "ops-mail", "pending")] + [(second.pk, "ops-mail", "pending")] * 3
    )
    assert (
        found(f"alert={second.pk}&state=pending&channel=ops-mail")
        == [(second.pk, "ops-mail", "pending")] * 3
    )
    assert found("channel=nothing-by-this-name") == []


NOT_AN_ALERT = "Must be an alert's id: a whole number, 1 or more."


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("alert=abc", "alert", NOT_AN_ALERT),
        ("alert=0", "alert", NOT_AN_ALERT),
        ("alert=-3", "alert", NOT_AN_ALERT),
        ("alert=99999999999999999999", "alert", NOT_AN_ALERT),
        ("alert=" + "9" * 5000, "alert", NOT_AN_ALERT),
        ("state=lost", "state", "Choose one of pending, sending, sent, failed, dead."),
        ("channel=", "channel", "Give a channel's name."),
    ],
    ids=["not-a-number", "zero", "negative", "past-bigint", "huge", "state", "empty-channel"],
)
def test_bad_filters_are_400_with_a_clear_message(reader, query, field, message):
    response = reader.get(f"{URL}?{query}")

    assert response.status_code == 400
    assert response.json()["errors"] == {field: [message]}
    assert f"{field}: {message}" in response.json()["detail"]


def test_another_organisations_rows_are_never_listed(reader, org, other_org, hook):
    theirs = make_channel(other_org, "ops-hook", "webhook", url="https://them.example/h")
    their_alert = make_alert(make_rule(other_org))
    ledger(their_alert, theirs, 3, last_error="theirs")
    engine.send_test([theirs])
    ledger(make_alert(make_rule(org)), hook, 1)

    everything = reader.get(URL).json()
    by_alert = reader.get(f"{URL}?alert={their_alert.pk}").json()

    assert everything["count"] == 1
    assert "theirs" not in str(everything)
    assert by_alert["count"] == 0


def test_the_ledger_is_read_only(api, write_token):
    client = api(write_token)

    assert client.post(URL, {}, format="json").status_code == 405
    assert client.get(f"{URL}1/").status_code == 404


def test_the_list_costs_a_fixed_number_of_queries(reader, org, hook, django_assert_max_num_queries):
    mail = make_channel(org, "ops-mail", "email", to=["a@example.com"])
    for key in ("first", "second", "third"):
        alert = make_alert(make_rule(org, key), f"fp-{key}")
        ledger(alert, hook, 10)
        ledger(alert, mail, 10)

    # The token, its last use, the count, the page: whatever the rows.
    with django_assert_max_num_queries(4):
        body = reader.get(URL).json()

    assert body["count"] == 60


def test_an_alerts_json_lists_its_latest_notifications(reader, org, hook):
    alert = make_alert(make_rule(org))
    other = make_alert(make_rule(org, "other"), "fp-other")
    rows = ledger(alert, hook, 55)
    ledger(other, hook, 2)

    body = reader.get(f"/api/v1/alerts/{alert.pk}/").json()

    assert len(body["notifications"]) == 50
    assert [n["id"] for n in body["notifications"]] == [r.pk for r in reversed(rows)][:50]
    assert list(body["notifications"][0]) == FIELDS
    assert {n["alert"] for n in body["notifications"]} == {alert.pk}


def test_an_alerts_json_costs_a_fixed_number_of_queries(
    reader, org, hook, django_assert_max_num_queries
):
    alert = make_alert(make_rule(org))
    ledger(alert, hook, 30)
    mail = make_channel(org, "ops-mail", "email", to=["a@example.com"])
    ledger(alert, mail, 30, start=timezone.now())

    # The token, its last use, the alert, its timeline, its notifications.
    with django_assert_max_num_queries(5):
        body = reader.get(f"/api/v1/alerts/{alert.pk}/").json()

    assert len(body["notifications"]) == 50
    assert body["notifications"][0]["channel"] == "ops-mail"


def test_acknowledging_answers_with_the_notifications(api, write_token, org, hook):
    alert = make_alert(make_rule(org))
    ledger(alert, hook, 2)

    response = api(write_token).post(f"/api/v1/alerts/{alert.pk}/acknowledge/", {}, format="json")

    assert response.status_code == 200, response.json()
    assert [n["step"] for n in response.json()["notifications"]] == [1, 0]
