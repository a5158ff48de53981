"""Each destination at its pace: storms go out bundled (PagerDuty waits instead), a
429's Retry-After holds the whole channel back, and nothing is lost or sent twice."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.alerting import outbox
from controlplane.paging import engine, pace
from controlplane.paging.models import ChannelHealth, Notification
from tests.factories import make_alert, make_channel, make_policy, make_rule
from tests.paging.rounds import deliver_rounds

pytestmark = pytest.mark.django_db

SECOND = timedelta(seconds=1)


def storm(org, channel, count: int) -> list:
    rule = make_rule(org, escalation_policy=make_policy(org, "storm", steps=[(0, [channel])]))
    alerts = [make_alert(rule, f"fp-{n}") for n in range(count)]
    outbox.drain()
    return alerts


def webhook_alerts(receiver) -> Counter:
    """How many times each alert arrived, whatever the bodies it came in."""
    return Counter(
        alert["fingerprint"] for request in receiver.requests for alert in request.body["alerts"]
    )


def test_a_storm_to_slack_goes_out_in_bundles_at_slacks_pace(org, slack_receiver):
    channel = make_channel(org, "ops-slack", "slack", url=f"{slack_receiver.url}/hooks/a/b/c")
    storm(org, channel, 70)
    now = timezone.now()

    deliver_rounds(now)

    # Slack's burst is three messages: three bundles of twenty, the last ten wait.
    assert len(slack_receiver.requests) == 3
    assert all(bundle.valid for bundle in slack_receiver.requests)
    assert all(
        bundle.body["text"].startswith("20 alert notifications")
        for bundle in slack_receiver.requests
    )
    assert Notification.objects.filter(state="sent").count() == 60
    waiting = Notification.objects.filter(state="pending")
    assert waiting.count() == 10
    assert {row.next_attempt_at for row in waiting} == {now + SECOND}, "put off, not dropped"
    assert {row.attempts for row in waiting} == {0}

    assert deliver_rounds(now + SECOND / 2) == {}, "Slack's pace holds them"
    assert deliver_rounds(now + SECOND) == {"sent": 10}
    assert len(slack_receiver.requests) == 4
    assert slack_receiver.requests[3].body["text"].startswith("10 alert notifications")


def test_a_few_notifications_within_the_pace_go_one_message_each(org, slack_receiver):
    channel = make_channel(org, "ops-slack", "slack", url=f"{slack_receiver.url}/hooks/a/b/c")
    storm(org, channel, pace.PACES["slack"].burst)

    deliver_rounds()

    assert len(slack_receiver.requests) == pace.PACES["slack"].burst
    assert all("alert notifications" not in r.body["text"] for r in slack_receiver.requests)


def test_a_webhook_storm_arrives_once_each_in_one_alertmanager_body(org, webhook_receiver):
    channel = make_channel(org, "hook", "webhook", url=f"{webhook_receiver.url}/in")
    alerts = storm(org, channel, 60)

    assert engine.deliver_due() == {"sent": 60}

    [body] = webhook_receiver.requests
    assert body.valid, body.problems
    assert body.body["truncatedAlerts"] == 0
    assert webhook_alerts(webhook_receiver) == Counter({a.fingerprint: 1 for a in alerts})
    trace_ids = {alert["trace_id"] for alert in body.body["alerts"]}
    assert trace_ids == {a.trace_id for a in alerts}
    # Each entry names its ledger row: the same on any repeat, for the receiver to drop.
    ids = {alert["notification_id"] for alert in body.body["alerts"]}
    assert ids == set(Notification.objects.values_list("pk", flat=True))


def test_pagerduty_is_never_bundled_past_its_pace_the_rest_wait(org, pagerduty_receiver):
    channel = make_channel(
        org, "pager", "pagerduty", routing_key="R" * 32, url=f"{pagerduty_receiver.url}/v2/enqueue"
    )
    storm(org, channel, 25)
    now = timezone.now()
    burst = pace.PACES["pagerduty"].burst

    deliver_rounds(now)

    assert len(pagerduty_receiver.requests) == burst
    assert all(r.valid for r in pagerduty_receiver.requests)
    assert Notification.objects.filter(state="pending").count() == 25 - burst
    deliver_rounds(now + 10 * SECOND)
    keys = [r.body["dedup_key"] for r in pagerduty_receiver.requests]
    assert len(keys) == len(set(keys)) == 25, "each alert its own incident, once"


def test_a_429_holds_the_whole_channel_back_for_its_retry_after(org, slack_receiver):
    channel = make_channel(org, "ops-slack", "slack", url=f"{slack_receiver.url}/hooks/a/b/c")
    slack_receiver.answer_next(1, 429, b"rate_limited", {"Retry-After": "30"})
    storm(org, channel, 1)
    now = timezone.now()
    engine.deliver_due(now)
    [throttled] = Notification.objects.all()
    assert throttled.state == "failed"

    # Another alert for the same channel while it is held back: it waits too.
    make_alert(throttled.alert.rule, "fp-later")
    outbox.drain()
    assert engine.deliver_due(now + 29 * SECOND) == {}
    assert len(slack_receiver.requests) == 1

    assert engine.deliver_due(now + 31 * SECOND) == {"sent": 2}
    assert Notification.objects.filter(state="sent").count() == 2
    assert ChannelHealth.objects.get(channel=channel).consecutive_failures == 0


def test_a_429_storm_delays_but_never_drops(org, webhook_receiver):
    channel = make_channel(org, "hook", "webhook", url=f"{webhook_receiver.url}/in")
    webhook_receiver.answer_next(5, 429, b"slow down", {"Retry-After": "2"})
    alerts = storm(org, channel, 40)
    now = timezone.now()

    for tick in range(30):  # a claim every second for half a minute
        engine.deliver_due(now + tick * SECOND)

    assert Notification.objects.exclude(state="sent").count() == 0
    delivered = Counter(
        alert["fingerprint"]
        for request in webhook_receiver.requests
        if request.answered == 200
        for alert in request.body["alerts"]
    )
    assert delivered == Counter({a.fingerprint: 1 for a in alerts})


def test_a_hanging_receiver_holds_back_its_own_channel_only(
    org, slack_receiver, pagerduty_receiver
):
    slack = make_channel(org, "ops-slack", "slack", url=f"{slack_receiver.url}/hooks/a/b/c")
    pager = make_channel(
        org, "pager", "pagerduty", routing_key="R" * 32, url=f"{pagerduty_receiver.url}/v2/enqueue"
    )
    rule = make_rule(org, escalation_policy=make_policy(org, "p", steps=[(0, [slack, pager])]))
    make_alert(rule)
    outbox.drain()
    slack_receiver.hang_next(1, 600)  # Slack's message hangs
    paged_while_slack_hangs: list[bool] = []

    def watch() -> None:
        try:
            # The channels go side by side: either request may arrive first.
            slack_receiver.until_received(1)
            pagerduty_receiver.until_received(1)
            paged_while_slack_hangs.append(slack_receiver.requests[0].answered is None)
        finally:
            slack_receiver.release()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert engine.deliver_due() == {"sent": 2}
    watcher.join()

    assert paged_while_slack_hangs == [True], "PagerDuty was paged while Slack still hung"


def test_a_429_mid_round_keeps_the_rest_of_the_channels_queue_unspent(org, pagerduty_receiver):
    channel = make_channel(
        org, "pager", "pagerduty", routing_key="R" * 32, url=f"{pagerduty_receiver.url}/v2/enqueue"
    )
    pagerduty_receiver.answer_next(1, 429, b"", {"Retry-After": "30"})
    storm(org, channel, 2)  # two messages in one round, in order on one thread
    now = timezone.now()

    engine.deliver_due(now)

    assert len(pagerduty_receiver.requests) == 1, "the second waited instead of meeting a 429"
    first, second = Notification.objects.order_by("pk")
    assert (first.state, first.attempts) == ("failed", 1)
    assert (second.state, second.attempts) == ("failed", 0), "no attempt spent on it"
    assert second.next_attempt_at >= now + 30 * SECOND
    assert deliver_rounds(now + 31 * SECOND) == {"sent": 2}


def test_a_round_takes_a_few_messages_per_channel_and_a_few_channels(org, settings):
    settings.PAGING_LEASE_SECONDS = 60  # 20 s a send at worst: two messages in a row
    channels = [
        make_channel(org, f"hook-{n}", "webhook", url=f"https://hooks.example.com/{n}")
        for n in range(engine.SENDERS + 2)
    ]
    pager = make_channel(org, "pager", "pagerduty", routing_key="R" * 32)
    storm(org, pager, 5)
    rule = make_rule(org, "fan", escalation_policy=make_policy(org, "fan", steps=[(0, channels)]))
    make_alert(rule, "fp-fan")
    outbox.drain()

    _, ids = engine.claim()

    taken = Counter(Notification.objects.filter(pk__in=ids).values_list("channel_name", flat=True))
    assert taken["pager"] == 2, "never more in a row than the lease can cover"
    assert len(taken) == engine.SENDERS, "the channels past the round's senders wait for the next"
    assert Notification.objects.filter(state="pending").count() == 5 + len(channels) - len(ids)


def test_a_channel_whose_kind_changed_while_rows_waited_gets_them_in_its_new_shape(
    org, slack_receiver, pagerduty_receiver
):
    channel = make_channel(org, "ops", "slack", url=f"{slack_receiver.url}/hooks/a/b/c")
    alerts = storm(org, channel, 6)
    channel.kind = "pagerduty"
    channel.config = {"routing_key": "R" * 32, "url": f"{pagerduty_receiver.url}/v2/enqueue"}
    channel.save()

    assert deliver_rounds() == {"sent": 6}

    assert slack_receiver.requests == []
    keys = sorted(r.body["dedup_key"] for r in pagerduty_receiver.requests)
    assert len(keys) == len(set(keys)) == len(alerts), "one event each, never a bundle"


def test_a_send_that_raises_is_retried_and_the_round_goes_on(org, settings, webhook_receiver):
    settings.EMAIL_BACKEND = "no.such.EmailBackend"  # a deployment's broken setting
    mail = make_channel(org, "ops-mail", "email", to=["oncall@example.com"])
    hook = make_channel(org, "hook", "webhook", url=f"{webhook_receiver.url}/in")
    rule = make_rule(org, escalation_policy=make_policy(org, "p", steps=[(0, [mail, hook])]))
    make_alert(rule)
    outbox.drain()

    assert engine.deliver_due() == {"sent": 1, "failed": 1}

    failed = Notification.objects.get(channel_name="ops-mail")
    assert failed.state == "failed"
    assert "raised" in failed.last_error
    assert len(webhook_receiver.requests) == 1
