"""The alert outbox: every change leaves a pending event, handed on once, in order."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.alerting import lifecycle, outbox
from controlplane.alerting.models import AlertEvent
from controlplane.catalog.actors import BEAT
from tests.factories import RecordingConsumer, make_alert, make_rule

pytestmark = pytest.mark.django_db


@pytest.fixture
def consumer():
    found = RecordingConsumer()
    outbox.register("test", found.handle)
    yield found
    outbox.unregister("test")


@pytest.fixture
def rule(org):
    return make_rule(org)


def pending() -> list[str]:
    return list(
        AlertEvent.objects.filter(dispatch="pending").order_by("pk").values_list("kind", flat=True)
    )


def test_every_change_leaves_a_pending_event_in_its_transaction(rule):
    alert = make_alert(rule)
    lifecycle.acknowledge(alert, BEAT)
    lifecycle.resolve(alert, actor=BEAT)

    assert pending() == ["opened", "acknowledged", "resolved"]


def test_each_event_is_handed_on_once_and_recorded_with_its_note(rule, consumer):
    alert = make_alert(rule)
    lifecycle.resolve(alert, actor=BEAT)

    assert outbox.drain() == 2
    assert outbox.drain() == 0

    assert consumer.seen == [(alert.pk, "opened"), (alert.pk, "resolved")]
    events = AlertEvent.objects.filter(alert=alert).order_by("pk")
    # Paging, the built-in consumer, says what it did too: no policy, nobody told.
    assert [(e.dispatch, e.dispatch_note, e.dispatch_attempts) for e in events] == [
        ("done", "paging: no escalation policy: nobody is notified; test: took opened", 1),
        ("done", "paging: not escalated; test: took resolved", 1),
    ]
    assert all(e.dispatched_at is not None for e in events)


def test_only_the_oldest_pending_event_of_an_alert_can_be_claimed(rule):
    first, second = make_alert(rule, "fp-1"), make_alert(rule, "fp-2")
    lifecycle.resolve(first, actor=BEAT)

    token = outbox.claim(timezone.now())

    claimed = AlertEvent.objects.filter(dispatch_token=token).order_by("pk")
    assert [(e.alert_id, e.kind) for e in claimed] == [(first.pk, "opened"), (second.pk, "opened")]


def test_two_claims_never_hold_the_same_event(rule):
    make_alert(rule)
    now = timezone.now()

    mine, theirs = outbox.claim(now), outbox.claim(now)

    assert AlertEvent.objects.filter(dispatch_token=mine).count() == 1
    assert not AlertEvent.objects.filter(dispatch_token=theirs).exists()
    assert outbox.dispatch(now) == 0  # a third worker finds nothing free either


def test_an_expired_claim_is_taken_over_and_only_started_hand_overs_count(rule, consumer, settings):
    make_alert(rule)
    now = timezone.now()
    abandoned = outbox.claim(now)  # a worker that claimed and died before starting

    later = now + timedelta(seconds=settings.ALERT_EVENT_LEASE_SECONDS + 1)
    assert outbox.dispatch(later) == 1

    event = AlertEvent.objects.get()
    assert event.dispatch == "done"
    assert event.dispatch_attempts == 1
    assert event.dispatch_token != abandoned


class WorkerDied(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs in that worker."""


def test_a_poison_event_that_kills_its_workers_is_given_up_and_charges_no_other_event(
    rule, consumer, settings, monkeypatch
):
    poison = make_alert(rule, "fp-poison")
    others = [make_alert(rule, f"fp-{n}") for n in range(3)]
    poison_event = poison.events.get()
    consume = outbox._consume

    def dies_on_poison(event):
        if event.pk == poison_event.pk:
            raise WorkerDied
        return consume(event)

    monkeypatch.setattr(outbox, "_consume", dies_on_poison)
    now = timezone.now()
    step = timedelta(seconds=settings.ALERT_EVENT_LEASE_SECONDS + 1)
    for round_ in range(outbox.MOST_ATTEMPTS):
        # Each worker claims the batch, starts on the oldest event and dies there.
        with pytest.raises(WorkerDied):
            outbox.dispatch(now + round_ * step)

    assert outbox.dispatch(now + outbox.MOST_ATTEMPTS * step) == 3

    poison_event.refresh_from_db()
    assert poison_event.dispatch == "failed"
    assert poison_event.dispatch_attempts == outbox.MOST_ATTEMPTS
    assert f"given up after {outbox.MOST_ATTEMPTS} attempts" in poison_event.dispatch_note
    batch_mates = AlertEvent.objects.filter(alert__in=others).order_by("pk")
    assert [(e.dispatch, e.dispatch_attempts) for e in batch_mates] == [("done", 1)] * 3
    assert consumer.seen == [(alert.pk, "opened") for alert in others]


def test_a_failing_consumer_marks_the_event_failed_undoes_its_writes_and_blocks_nothing(rule):
    failing = RecordingConsumer(fail_on=("opened",))
    outbox.register("failing", failing.handle)
    try:
        alert = make_alert(rule)
        other = make_alert(rule, "fp-2")
        lifecycle.acknowledge(other, BEAT)
        lifecycle.resolve(alert, actor=BEAT)
        outbox.drain()
    finally:
        outbox.unregister("failing")

    opened = AlertEvent.objects.filter(kind="opened").order_by("pk")
    assert [e.dispatch for e in opened] == ["failed", "failed"]
    assert all(
        "failing failed: RuntimeError: cannot handle opened" in e.dispatch_note for e in opened
    )
    assert all(e.note == "" for e in opened)  # the consumer's own write was rolled back
    # The events behind the failed ones went on.
    assert failing.seen == [(other.pk, "acknowledged"), (alert.pk, "resolved")]
    assert pending() == []


def test_an_unknown_event_is_failed_with_its_reason(rule, consumer):
    alert = make_alert(rule)
    AlertEvent.objects.filter(alert=alert).update(kind="exploded")

    outbox.drain()

    event = AlertEvent.objects.get(alert=alert)
    assert event.dispatch == "failed"
    assert event.dispatch_note == "unknown event kind 'exploded'"
    assert consumer.seen == []


def test_failed_events_can_be_retried(rule, consumer):
    alert = make_alert(rule)
    AlertEvent.objects.filter(alert=alert).update(dispatch="failed", dispatch_note="boom")

    assert outbox.retry(AlertEvent.objects.all()) == 1
    outbox.drain()

    assert AlertEvent.objects.get(alert=alert).dispatch == "done"
    assert consumer.seen == [(alert.pk, "opened")]


def test_draining_takes_a_bounded_number_of_queries(rule, consumer, django_assert_max_num_queries):
    for n in range(20):
        make_alert(rule, f"fp-{n}")

    # give up and claim (4), list (1), then per event: start, lock, savepoints,
    # record (about 7; the savepoints are a test's, BEGIN and COMMIT outside one), and
    # paging's look for an escalation and a policy (3).
    with django_assert_max_num_queries(20 * 11 + 8):
        assert outbox.drain() == 20


def test_an_event_whose_every_claim_died_is_given_up_and_its_alert_goes_on(rule, consumer):
    alert = make_alert(rule)
    lifecycle.resolve(alert, actor=BEAT)
    opened = AlertEvent.objects.get(alert=alert, kind="opened")
    # Every worker that took it died: attempts used up, the last lease run out.
    AlertEvent.objects.filter(pk=opened.pk).update(
        dispatch_attempts=outbox.MOST_ATTEMPTS,
        dispatch_claimed_until=timezone.now() - timedelta(seconds=1),
    )

    outbox.drain()

    opened.refresh_from_db()
    assert opened.dispatch == "failed"
    assert f"given up after {outbox.MOST_ATTEMPTS} attempts" in opened.dispatch_note
    assert consumer.seen == [(alert.pk, "resolved")]


def test_the_outbox_failing_on_one_event_records_it_and_goes_on(rule, consumer, monkeypatch):
    first, second = make_alert(rule, "fp-1"), make_alert(rule, "fp-2")
    hand_over = outbox._hand_over

    def breaks_on_first(pk, token):
        if pk == first.events.get().pk:
            raise ValueError("bad row\x00")
        return hand_over(pk, token)

    monkeypatch.setattr(outbox, "_hand_over", breaks_on_first)
    outbox.drain()

    broken = first.events.get()
    assert broken.dispatch == "failed"
    assert broken.dispatch_note == "the outbox failed: ValueError: bad row"
    assert consumer.seen == [(second.pk, "opened")]


def test_a_transaction_with_many_events_nudges_a_worker_once(
    rule, settings, django_capture_on_commit_callbacks
):
    from django.db import transaction

    settings.ALERT_EVENT_NUDGE = True
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        for n in range(3):
            lifecycle.resolve(make_alert(rule, f"fp-{n}"), actor=BEAT)

    assert [callback.__name__ for callback in callbacks] == ["_nudge"]
    assert AlertEvent.objects.count() == 6
