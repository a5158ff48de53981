"""Paces on PostgreSQL: a channel another worker is pacing (its health row locked) is
left to it; the claim takes the other channels' rows instead of queueing behind it."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from controlplane.alerting import outbox
from controlplane.paging import engine
from controlplane.paging.models import ChannelHealth, Notification
from tests.factories import make_alert, make_channel, make_policy, make_rule
from tests.services import require_postgresql
from tests.waiting import DEADLINE

pytestmark = pytest.mark.integration


@pytest.mark.django_db(transaction=True)
def test_a_channel_being_paced_elsewhere_is_passed_by_not_waited_on(org):
    require_postgresql()
    busy = make_channel(org, "busy", "webhook", url="https://hooks.example.com/busy")
    free = make_channel(org, "free", "webhook", url="https://hooks.example.com/free")
    make_alert(make_rule(org, escalation_policy=make_policy(org, "p", steps=[(0, [busy, free])])))
    outbox.drain()
    ChannelHealth.objects.create(channel=busy)
    locked, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def other_worker() -> None:
        # Another worker between pacing `busy` and leasing its rows: it holds the lock.
        try:
            with transaction.atomic():
                ChannelHealth.objects.select_for_update().get(channel=busy)
                locked.set()
                release.wait(DEADLINE)
        except BaseException as error:  # reported below
            failures.append(error)
        finally:
            connection.close()

    holder = threading.Thread(target=other_worker, daemon=True)
    holder.start()
    assert locked.wait(DEADLINE), "the other worker never took the pace's lock"
    try:
        with connection.cursor() as cursor:
            # Were the claim to queue behind the lock, this would raise, not hang.
            cursor.execute("SET lock_timeout = '5s'")
        _, ids = engine.claim()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
        release.set()
        holder.join(DEADLINE)

    assert failures == []
    assert list(Notification.objects.filter(pk__in=ids).values_list("channel_name", flat=True)) == [
        "free"
    ]
    assert Notification.objects.get(channel_name="busy").state == "pending", "left, not lost"
