"""Paging end to end in one process: alert outbox -> escalation -> ledger -> real
receivers on loopback (Slack, PagerDuty, webhook over HTTP, email over SMTP)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from controlplane.alerting import lifecycle, outbox
from controlplane.catalog.actors import BEAT
from controlplane.paging import engine
from controlplane.paging.models import ChannelHealth, Escalation, Notification
from controlplane.paging.transports import Delivered
from observability import tracing
from tests.factories import make_alert, make_channel, make_policy, make_rule, make_silence
from tests.paging.rounds import deliver_rounds

pytestmark = pytest.mark.django_db

ROUTING_KEY = "R" * 32
LATER = timedelta(minutes=5)


@pytest.fixture
def receivers(slack_receiver, pagerduty_receiver, email_to_receiver):
    return slack_receiver, pagerduty_receiver, email_to_receiver


@pytest.fixture
def paging(org, receivers):
    """A rule whose policy tells Slack and email at once and PagerDuty 5 minutes later."""
    slack, pagerduty, _ = receivers
    ops_slack = make_channel(org, "ops-slack", "slack", url=f"{slack.url}/hooks/T000/B000/XXXX")
    ops_mail = make_channel(org, "ops-mail", "email", to=["oncall@example.com"])
    pager = make_channel(
        org, "pager", "pagerduty", routing_key=ROUTING_KEY, url=f"{pagerduty.url}/v2/enqueue"
    )
    policy = make_policy(
        org, "ops", steps=[(0, [ops_slack, ops_mail]), (LATER, [pager])], notify_on_resolve=True
    )
    return make_rule(org, escalation_policy=policy)


def states() -> list[tuple[str, str, str]]:
    return sorted(
        Notification.objects.values_list("channel_name", "event", "state"),
    )


def test_an_alert_walks_its_policy_and_each_receiver_gets_each_message_once(paging, receivers):
    slack, pagerduty, mail = receivers
    with tracing.span("evaluation"):  # as the evaluator opens alerts
        alert = make_alert(paging, annotations={"summary": "queue is deep"})
    opened = alert.started_at

    outbox.drain()
    engine.deliver_due()

    assert states() == [("ops-mail", "trigger", "sent"), ("ops-slack", "trigger", "sent")]
    [message] = slack.requests
    assert message.valid, message.problems
    assert "queue is deep" in message.raw.decode()
    assert alert.trace_id
    assert alert.trace_id in message.raw.decode()
    [email] = mail.messages
    assert email.message["X-Trace-Id"] == alert.trace_id
    assert pagerduty.requests == []

    # Nothing more until the second step's time, then PagerDuty.
    assert engine.escalate_due(opened + LATER - timedelta(seconds=1)) == 0
    assert engine.escalate_due(opened + LATER) == 1
    engine.deliver_due(opened + LATER)
    [trigger] = pagerduty.requests
    assert trigger.valid, trigger.problems
    assert trigger.body["event_action"] == "trigger"

    # The clock went on to the second step's time: each channel's pace counts from there.
    lifecycle.acknowledge(alert, BEAT)
    outbox.drain()
    engine.deliver_due(opened + LATER)
    lifecycle.resolve(alert, actor=BEAT)
    outbox.drain()
    engine.deliver_due(opened + LATER)

    actions = [r.body["event_action"] for r in pagerduty.requests]
    assert actions == ["trigger", "acknowledge", "resolve"]
    assert len({r.body["dedup_key"] for r in pagerduty.requests}) == 1
    assert all(r.valid for r in pagerduty.requests + slack.requests)
    assert len(slack.requests) == 2
    assert len(mail.messages) == 2
    assert all(state == "sent" for _, _, state in states())
    assert Escalation.objects.get(alert=alert).next_at is None


def test_a_failed_send_is_retried_after_its_backoff_and_arrives_once(paging, receivers):
    slack, _, _ = receivers
    slack.answer_next(1, 500, b"rollup_error")
    alert = make_alert(paging)
    outbox.drain()

    engine.deliver_due()

    row = Notification.objects.get(channel_name="ops-slack")
    assert (row.state, row.attempts, row.last_status) == ("failed", 1, 500)
    assert row.next_attempt_at > alert.started_at + timedelta(seconds=10)
    assert engine.deliver_due(row.next_attempt_at - timedelta(seconds=1)) == {}

    engine.deliver_due(row.next_attempt_at)

    row.refresh_from_db()
    assert (row.state, row.attempts) == ("sent", 2)
    assert [r.answered for r in slack.requests] == [500, 200]


def test_a_429_waits_as_long_as_the_receiver_asks(paging, receivers):
    slack, _, _ = receivers
    slack.answer_next(1, 429, b"rate_limited", headers={"Retry-After": "42"})
    make_alert(paging)
    outbox.drain()
    before = timezone.now()

    engine.deliver_due()

    row = Notification.objects.get(channel_name="ops-slack")
    assert row.state == "failed"
    assert before + timedelta(seconds=42) <= row.next_attempt_at
    assert row.next_attempt_at <= timezone.now() + timedelta(seconds=42)


def test_a_revoked_webhook_is_given_up_and_its_channel_shown_failing(paging, receivers):
    slack, _, _ = receivers
    slack.answer_next(3, 404, b"no_service")
    for n in range(3):
        make_alert(paging, f"fp-{n}")
    outbox.drain()

    deliver_rounds()

    dead = Notification.objects.filter(channel_name="ops-slack")
    assert [row.state for row in dead] == ["dead"] * 3
    assert all("no_service" in row.last_error for row in dead)
    health = ChannelHealth.objects.get(channel__name="ops-slack")
    assert health.failing
    assert health.consecutive_failures == 3
    assert not ChannelHealth.objects.get(channel__name="ops-mail").failing

    assert engine.retry_now(Notification.objects.filter(state="dead")) == 3
    # Three messages spent Slack's burst: the retries go once its pace lets them.
    deliver_rounds(timezone.now() + timedelta(seconds=5))
    assert Notification.objects.filter(channel_name="ops-slack", state="sent").count() == 3
    assert not ChannelHealth.objects.get(channel__name="ops-slack").failing


def test_a_worker_killed_mid_delivery_leaves_its_rows_to_the_next_one(paging, receivers):
    slack, _, mail = receivers
    make_alert(paging)
    outbox.drain()
    now = timezone.now()
    dead_token, taken = engine.claim(now)  # claimed, then the worker was killed
    assert len(taken) == 2

    assert engine.claim(now + timedelta(seconds=1))[1] == [], "the lease holds"
    token, retaken = engine.claim(now + engine.lease_duration() + timedelta(seconds=1))
    assert sorted(retaken) == sorted(taken)
    engine.deliver_claimed(token, retaken)

    row = Notification.objects.get(channel_name="ops-slack")
    assert (row.state, row.attempts) == ("sent", 2)
    assert len(slack.requests) == 1
    assert len(mail.messages) == 1
    # The killed worker's late answer counts for nothing.
    assert engine.record(row, dead_token, Delivered(200)) == "lost lease"


def test_an_edit_mid_incident_changes_nothing_in_flight_until_reapplied(org, paging, receivers):
    _, _pagerduty, _ = receivers
    alert = make_alert(paging)
    outbox.drain()
    policy = paging.escalation_policy
    policy.steps.filter(position=1).update(delay=timedelta(hours=1))
    policy.version += 1
    policy.save()

    engine.escalate_due(alert.started_at + LATER)
    assert Notification.objects.filter(channel_name="pager").count() == 1, "the snapshot rules"

    # Re-applied, the new version's steps already written are not written again.
    escalation = Escalation.objects.get(alert=alert)
    assert engine.reapply(escalation, alert.started_at + LATER) == 0
    escalation.refresh_from_db()
    assert escalation.policy_version == policy.version
    assert escalation.next_at is None  # one loop, every step already written


def test_no_policy_means_nobody_is_told(org, receivers):
    _slack, _, _ = receivers
    make_alert(make_rule(org))

    outbox.drain()

    assert Notification.objects.count() == 0
    assert not Escalation.objects.exists()


def test_the_default_policy_covers_rules_that_name_none(org, receivers):
    slack, _, _ = receivers
    channel = make_channel(org, "ops-slack", "slack", url=f"{slack.url}/hooks/a/b/c")
    make_policy(org, "default", steps=[(0, [channel])], is_default=True)

    make_alert(make_rule(org))
    outbox.drain()
    engine.deliver_due()

    assert len(slack.requests) == 1


def test_a_silenced_alert_escalates_only_once_its_silence_ends(org, paging, receivers):
    slack, _, _ = receivers
    silence = make_silence(org, matchers=[{"name": "rule", "op": "=", "value": paging.key}])
    alert = make_alert(paging)
    assert alert.silenced_by_id == silence.pk

    outbox.drain()
    assert Notification.objects.count() == 0

    lifecycle.lift_silence(silence, "done", BEAT)
    outbox.drain()
    engine.deliver_due()
    assert len(slack.requests) == 1


def test_taking_an_event_twice_writes_nothing_twice(paging, receivers):
    alert = make_alert(paging)
    outbox.drain()
    event = alert.events.get(kind="opened")

    engine.handle(event)
    engine.handle(event)

    assert Notification.objects.count() == 2


def test_a_test_fired_alert_is_marked_as_a_test_in_what_is_sent(paging, receivers):
    slack, _, _ = receivers
    make_alert(paging, is_test=True)
    outbox.drain()

    engine.deliver_due()

    assert Notification.objects.filter(is_test=True).count() == 2
    assert "TEST" in slack.requests[0].raw.decode()


def test_escalating_and_claiming_take_a_bounded_number_of_queries(
    org, paging, receivers, django_assert_max_num_queries
):
    alerts = [make_alert(paging, f"fp-{n}") for n in range(10)]
    outbox.drain()
    later = max(a.started_at for a in alerts) + LATER

    with django_assert_max_num_queries(3 + 10 * 6):
        assert engine.escalate_due(later) == 10
    # Whatever the rows and channels: select, pace rows made and locked, paces moved,
    # one lease for all, two to put off what waits (two for the transaction's savepoint).
    with django_assert_max_num_queries(9):
        _, ids = engine.claim(later)
    # Slack's ten and the email's ten each in one bundle; PagerDuty's ten are never
    # bundled and a round sends a channel two messages at most: two now.
    assert len(ids) == 22


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_deliveries_are_counted_timed_and_the_queue_measured(paging, receivers):
    slack, _, _ = receivers
    slack.answer_next(1, 503)
    sent = {"channel_kind": "email", "event": "trigger", "outcome": "sent"}
    retried = {"channel_kind": "slack", "event": "trigger", "outcome": "retry"}
    before = {
        "sent": sample("controlplane_notifications_total", **sent),
        "retry": sample("controlplane_notifications_total", **retried),
        "timed": sample("controlplane_notification_delivery_seconds_count"),
    }
    make_alert(paging)
    outbox.drain()

    engine.deliver_due()

    assert sample("controlplane_notifications_total", **sent) == before["sent"] + 1
    assert sample("controlplane_notifications_total", **retried) == before["retry"] + 1
    assert sample("controlplane_notification_delivery_seconds_count") == before["timed"] + 1
    assert sample("controlplane_notification_queue_depth", state="failed") == 1
    assert sample("controlplane_notification_queue_depth", state="pending") == 0


def test_each_outcome_is_logged_a_give_up_as_a_warning(paging, receivers, caplog):
    slack, _, _ = receivers
    slack.answer_next(1, 404, b"no_service")
    make_alert(paging)
    outbox.drain()

    with caplog.at_level("INFO", logger="controlplane.paging.engine"):
        engine.deliver_due()

    lines = {(r.levelname, r.getMessage().split(": ")[1]) for r in caplog.records}
    assert ("WARNING", "dead") in lines
    assert ("INFO", "sent") in lines
    [dead] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "ops-slack" in dead.getMessage()
    assert "no_service" in dead.getMessage()


def test_the_tick_looks_a_second_ahead_for_the_next_step(paging, receivers):
    alert = make_alert(paging)
    outbox.drain()
    second_step = alert.started_at + LATER

    assert engine.next_due(second_step - timedelta(seconds=2)) is None
    assert engine.next_due(second_step - timedelta(seconds=0.5)) == second_step
    assert engine.next_due(second_step) is None, "due now: the tick itself takes it"
