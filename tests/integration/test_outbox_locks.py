"""The outbox on PostgreSQL: a hand-over in progress past its lease (a slow consumer)
holds its row lock, and another dispatcher (claim and give-up alike) passes it by
instead of queueing behind it."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from controlplane.alerting import outbox
from controlplane.alerting.models import AlertEvent
from tests.factories import RecordingConsumer, make_alert, make_rule
from tests.services import require_postgresql
from tests.waiting import DEADLINE

pytestmark = pytest.mark.integration


@pytest.mark.django_db(transaction=True)
def test_a_slow_hand_over_past_its_lease_is_passed_by_not_waited_on(org, settings):
    require_postgresql()
    rule = make_rule(org)
    slow, spent = make_alert(rule, "fp-slow"), make_alert(rule, "fp-spent")
    other = make_alert(rule, "fp-other")
    slow_event, spent_event, other_event = (a.events.get() for a in (slow, spent, other))
    # Its last attempt under way: give_up must pass it by too, not wait for its outcome.
    AlertEvent.objects.filter(pk=spent_event.pk).update(dispatch_attempts=outbox.MOST_ATTEMPTS)
    locked, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def slow_consumer() -> None:
        # A worker whose consumer runs past its lease: it holds the row lock meanwhile.
        try:
            with transaction.atomic():
                list(
                    AlertEvent.objects.select_for_update().filter(
                        pk__in=[slow_event.pk, spent_event.pk]
                    )
                )
                locked.set()
                release.wait(DEADLINE)
        except BaseException as error:  # reported below
            failures.append(error)
        finally:
            connection.close()

    holder = threading.Thread(target=slow_consumer, daemon=True)
    holder.start()
    assert locked.wait(DEADLINE), "the slow worker never took its row lock"
    consumer = RecordingConsumer()
    outbox.register("test", consumer.handle)
    try:
        later = timezone.now() + timedelta(seconds=settings.ALERT_EVENT_LEASE_SECONDS + 1)
        with connection.cursor() as cursor:
            # Were the dispatcher to queue behind the lock, this would raise, not hang.
            cursor.execute("SET lock_timeout = '5s'")
        handled = outbox.dispatch(later) + outbox.give_up(later)
    finally:
        outbox.unregister("test")
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
        release.set()
        holder.join(DEADLINE)

    assert failures == []
    assert handled == 1
    assert consumer.seen == [(other.pk, "opened")]
    for event in (slow_event, spent_event, other_event):
        event.refresh_from_db()
    assert (slow_event.dispatch, slow_event.dispatch_attempts) == ("pending", 0)
    assert (spent_event.dispatch, spent_event.dispatch_attempts) == (
        "pending",
        outbox.MOST_ATTEMPTS,
    )
    assert other_event.dispatch == "done"
