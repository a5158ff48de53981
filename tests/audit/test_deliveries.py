"""Every notification delivered or given up, in the audit trail: one event per ledger row,
written by the delivery worker in the transaction recording the outcome, against real
receivers on loopback (tests/receivers.py). The events say where (a channel by name and
kind, a person by pseudonym), how it went (attempts, HTTP status, a class of failure)
and for which alert; never a channel's URL, secret or address."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from controlplane.alerting import outbox
from controlplane.audit import sealing
from controlplane.audit.models import AuditEvent, Pseudonym
from controlplane.catalog.models import Role
from controlplane.oncall.models import Responder, Shift
from controlplane.paging import engine
from controlplane.paging.models import EscalationStep, Notification
from controlplane.paging.tasks import deliver_notifications
from controlplane.paging.transports import Delivered, GiveUp, Retry
from tests.factories import make_alert, make_channel, make_policy, make_rule, make_schedule
from tests.paging.conftest import LOOPBACK
from tests.paging.rounds import deliver_rounds
from tests.receivers import SlackReceiver, SmtpReceiver, WebhookReceiver

pytestmark = pytest.mark.django_db

DELIVERER = "system:paging.deliver_notifications"
SLACK_PATH = "/hooks/T000/B000/XXXXsecretpath"
HOOK_SECRET = "hook-secret-k9-0451"
MAILING_LIST = "oncall-list@example.com"


# The paging tests' receivers on loopback (tests/paging/conftest.py), here as there.
@pytest.fixture
def loopback_allowed(settings):
    settings.ALLOWED_PRIVATE_NETWORKS = LOOPBACK
    return settings


@pytest.fixture
def slack_receiver(loopback_allowed) -> Iterator[SlackReceiver]:
    receiver = SlackReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def webhook_receiver(loopback_allowed) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def email_to_receiver(settings) -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = receiver.host, receiver.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.DEFAULT_FROM_EMAIL = "controlplane@example.com"
    yield receiver
    receiver.close()


def trail(row: Notification) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(
            object_type="paging.notification", object_id=str(row.pk)
        ).order_by("id")
    )


def deliveries() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(object_type="paging.notification").order_by("id"))


def as_json(events: list[AuditEvent]) -> str:
    return json.dumps([{"actor": e.actor, "label": e.object_label, "diff": e.diff} for e in events])


def policy_to(org, *channels):
    return make_rule(org, escalation_policy=make_policy(org, "ops", steps=[(0, list(channels))]))


def test_a_delivery_is_recorded_as_delivered_by_the_delivery_task(
    org, slack_receiver, email_to_receiver
):
    slack = make_channel(org, "ops-slack", "slack", url=f"{slack_receiver.url}{SLACK_PATH}")
    mail = make_channel(org, "ops-mail", "email", to=[MAILING_LIST])
    alert = make_alert(policy_to(org, slack, mail))
    outbox.drain()

    deliver_notifications.apply()

    [request] = slack_receiver.requests
    assert request.answered == 200
    assert len(email_to_receiver.messages) == 1
    to_slack = Notification.objects.get(channel_name="ops-slack")
    [event] = trail(to_slack)
    assert event.action == "notification.delivered"
    assert event.actor == DELIVERER
    assert (event.organization_id, event.object_label) == (
        org.pk,
        f"trigger of alert {alert.pk} to ops-slack",
    )
    assert event.diff == {
        "state": {"from": "sending", "to": "sent"},
        "alert": alert.pk,
        "event": "trigger",
        "channel": "ops-slack",
        "kind": "slack",
        "attempts": 1,
        "status": 200,
    }
    [emailed] = trail(Notification.objects.get(channel_name="ops-mail"))
    assert emailed.diff["status"] is None  # email has no HTTP status
    assert (emailed.diff["channel"], emailed.diff["kind"]) == ("ops-mail", "email")
    text = as_json(deliveries())
    assert "secretpath" not in text
    assert MAILING_LIST not in text
    sealing.seal(org.pk)
    assert all(e.seq for e in deliveries()), "sealed: each event's content is what its MAC says"


def test_a_permanent_refusal_is_recorded_as_given_up_with_its_status(org, webhook_receiver):
    hook = make_channel(
        org, "ops-hook", "webhook", url=f"{webhook_receiver.url}/in", secret=HOOK_SECRET
    )
    webhook_receiver.secret = HOOK_SECRET
    webhook_receiver.answer_next(1, 400, b"bad request")
    alert = make_alert(policy_to(org, hook))
    outbox.drain()

    engine.deliver_due()

    row = Notification.objects.get(alert=alert)
    assert (row.state, row.last_status) == ("dead", 400)
    assert [r.answered for r in webhook_receiver.requests] == [400]
    [event] = trail(row)
    assert event.action == "notification.given_up"
    assert event.actor == DELIVERER
    assert event.diff["state"] == {"from": "sending", "to": "dead"}
    assert (event.diff["status"], event.diff["error"]) == (400, "refused by the receiver")
    assert (event.diff["channel"], event.diff["kind"], event.diff["attempts"]) == (
        "ops-hook",
        "webhook",
        1,
    )
    text = as_json([event])
    assert HOOK_SECRET not in text
    assert webhook_receiver.url not in text


def test_retries_exhausted_on_500_are_given_up_once_and_the_retries_not_recorded(
    org, slack_receiver
):
    slack = make_channel(org, "ops-slack", "slack", url=f"{slack_receiver.url}{SLACK_PATH}")
    slack_receiver.answer_next(engine.MOST_ATTEMPTS, 500, b"rollup_error")
    make_alert(policy_to(org, slack))
    outbox.drain()
    row = Notification.objects.get()

    for _ in range(engine.MOST_ATTEMPTS):
        engine.deliver_due(row.next_attempt_at)
        row.refresh_from_db()
        if row.state == "failed":
            assert trail(row) == [], "a retry is not an outcome"

    assert (row.state, row.attempts) == ("dead", engine.MOST_ATTEMPTS)
    assert [r.answered for r in slack_receiver.requests] == [500] * engine.MOST_ATTEMPTS
    [event] = trail(row)
    assert event.action == "notification.given_up"
    assert event.diff["attempts"] == engine.MOST_ATTEMPTS
    assert (event.diff["status"], event.diff["error"]) == (500, "retries exhausted")
    assert SLACK_PATH not in as_json([event])


def test_a_bundle_is_one_event_per_row_each_naming_its_message(org, slack_receiver):
    slack = make_channel(org, "ops-slack", "slack", url=f"{slack_receiver.url}{SLACK_PATH}")
    rule = policy_to(org, slack)
    alerts = [make_alert(rule, f"fp-{n}") for n in range(4)]  # past Slack's burst of 3
    outbox.drain()

    engine.deliver_due()

    [message] = slack_receiver.requests
    assert message.body["text"].startswith("4 alert notifications")
    rows = list(Notification.objects.order_by("pk"))
    events = deliveries()
    assert [e.object_id for e in events] == [str(row.pk) for row in rows]
    assert {e.action for e in events} == {"notification.delivered"}
    assert sorted(e.diff["alert"] for e in events) == sorted(a.pk for a in alerts)
    assert [e.diff["bundle"] for e in events] == [{"message": rows[0].pk, "size": 4}] * 4


def test_recording_a_bundle_costs_one_insert_per_row_and_no_read_per_row(org, slack_receiver):
    slack = make_channel(org, "ops-slack", "slack", url=f"{slack_receiver.url}{SLACK_PATH}")
    rule = policy_to(org, slack)
    for n in range(6):
        make_alert(rule, f"fp-{n}")
    outbox.drain()
    _, ids = engine.claim()
    # As the worker loads them (engine.deliver_claimed): with their alerts.
    rows = list(Notification.objects.filter(pk__in=ids).select_related("alert").order_by("pk"))
    assert len({row.lease_token for row in rows}) == 1, "one message"

    with CaptureQueriesContext(connection) as queries:
        states = engine.record_message(rows, rows[0].lease_token, Delivered(200))

    assert states == ["sent"] * 6
    statements = [q["sql"] for q in queries.captured_queries]
    inserts = [s for s in statements if s.startswith("INSERT") and "audit_auditevent" in s]
    assert len(inserts) == 6
    # As before auditing: the savepoint and its release, the rows locked, one update,
    # the channel's health; auditing adds the inserts only.
    assert len(statements) - len(inserts) == 5, statements


def test_a_person_on_call_is_named_by_pseudonym_never_by_name_or_address(
    org, member, email_to_receiver, webhook_receiver
):
    alice = member(org, Role.RESPONDER, username="alice")
    responder = Responder.objects.create(organization=org, user=alice)
    rota = make_schedule(org, "primary")
    now = timezone.now()
    Shift.objects.create(
        schedule=rota, responder=responder, start=now - timedelta(hours=1), end=now + timedelta(1)
    )
    hook = make_channel(org, "ops-hook", "webhook", url=f"{webhook_receiver.url}/in")
    rule = policy_to(org, hook)
    EscalationStep.objects.get(policy__slug="ops").schedules.set([rota])
    make_alert(rule)
    outbox.drain()

    engine.deliver_due()

    row = Notification.objects.get(responder=responder)
    assert (row.state, row.channel_name) == ("sent", "primary: alice")
    assert [m.rcpt_tos for m in email_to_receiver.messages] == [["alice@example.com"]]
    [event] = trail(row)
    assert event.action == "notification.delivered"
    pseudonym = Pseudonym.objects.get(user=alice).value
    assert event.diff["recipient"] == f"user:{pseudonym}"
    assert (event.diff["schedule"], event.diff["kind"]) == ("primary", "email")
    assert "channel" not in event.diff
    assert event.object_label.endswith("to primary (on call)")
    text = as_json([event])
    assert "alice" not in text


def test_nobody_on_call_is_recorded_as_given_up_when_written(org, webhook_receiver):
    rota = make_schedule(org, "empty-rota")  # nobody has a shift
    hook = make_channel(org, "ops-hook", "webhook", url=f"{webhook_receiver.url}/in")
    rule = policy_to(org, hook)
    EscalationStep.objects.get(policy__slug="ops").schedules.set([rota])
    alert = make_alert(rule)

    outbox.drain()

    gap = Notification.objects.get(schedule=rota)
    assert gap.state == "dead"
    [event] = trail(gap)
    assert event.action == "notification.given_up"
    assert event.actor == "system:paging.escalate"
    assert event.diff == {
        "state": {"to": "dead"},
        "alert": alert.pk,
        "event": "trigger",
        "schedule": "empty-rota",
        "kind": "email",
        "recipient": None,
        "attempts": 0,
        "status": None,
        "error": "nobody on call",
    }
    # Escalating again writes nothing new and records nothing new.
    engine.escalate_due(timezone.now() + timedelta(minutes=1))
    assert len(trail(gap)) == 1


def test_a_rolled_back_delivery_transaction_leaves_no_event(org, slack_receiver, monkeypatch):
    slack = make_channel(org, "ops-slack", "slack", url=f"{slack_receiver.url}{SLACK_PATH}")
    make_alert(policy_to(org, slack))
    outbox.drain()

    def health_fails(*args, **kwargs):
        raise RuntimeError("the database went away before the commit")

    # The failure comes after the row's update and its audit event, inside the same
    # transaction: both go.
    monkeypatch.setattr(engine, "_record_health", health_fails)
    with pytest.raises(RuntimeError):
        engine.deliver_due()

    row = Notification.objects.get()
    assert row.state == "sending", "the outcome was not recorded"
    assert len(slack_receiver.requests) == 1
    assert deliveries() == []

    # The lease runs out; the next worker sends again and its outcome is recorded once.
    monkeypatch.undo()
    deliver_rounds(row.lease_until + timedelta(seconds=1))

    row.refresh_from_db()
    assert row.state == "sent"
    [event] = trail(row)
    assert (event.action, event.diff["attempts"]) == ("notification.delivered", 2)


# --- pure -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (Delivered(200), None),
        (Delivered(None), None),
        (GiveUp("Slack answered HTTP 404", status=404), "refused by the receiver"),
        (GiveUp("the channel was deleted"), "could not be sent"),
        (Retry("the receiver answered HTTP 503", status=503), "retries exhausted"),
        (Retry("the SMTP server closed the connection"), "retries exhausted"),
    ],
)
def test_the_class_of_a_final_failure(outcome, expected):
    assert engine.failure_class(outcome) == expected


def test_a_row_to_a_person_is_told_apart_from_a_channels_by_its_name():
    channel_row = Notification(channel_name="ops-slack", channel_kind="slack")
    person_row = Notification(channel_name="primary: alice", channel_kind="email")

    assert engine.destination(channel_row) == {"channel": "ops-slack", "kind": "slack"}
    assert engine.destination(person_row, "user:p_0123456789abcdef") == {
        "schedule": "primary",
        "kind": "email",
        "recipient": "user:p_0123456789abcdef",
    }
