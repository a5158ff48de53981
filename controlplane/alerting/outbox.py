"""The alert outbox: the one way other contexts learn about alert changes.

Every timeline event (`AlertEvent`) is written by `lifecycle.record()` in the
transaction of the change it describes, and starts `pending`. A dispatcher (the
beat task `alerting.dispatch_alert_events`, and a nudge after each commit) claims
pending events with a compare-and-set lease, then hands each one, under a row
lock, to every registered consumer; the event becomes `done` in the same
transaction as whatever the consumers wrote. So:

- a crash before that commit rolls the consumers' writes back and the lease runs
  out: the event is taken again, by whichever worker comes next;
- two workers never hold the same event (the lease, then the row lock);
- a consumer that raises marks the event `failed` with its reason, and the events
  behind it go on; so does an event whose every hand-over (MOST_ATTEMPTS) ended
  with no outcome, its worker killed or past its lease. An attempt is counted when
  the hand-over starts, not when the batch is claimed, so the events claimed beside
  a poison event are never charged for the workers it killed;
- a worker never waits on another: rows locked by a hand-over in progress (a slow
  consumer past its lease) are skipped, not queued behind;
- events of one alert are handed over in order: only the oldest pending event of
  an alert can be claimed.

A consumer is `handle(event) -> str`: it records what it did in the database
(a notification row, an audit entry), never over the network (it runs inside the
claiming transaction), and returns a short note. It must ignore kinds it has no
use for. Register it once, from its app's `ready()`:

    outbox.register("paging", paging.consumer.handle)
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from controlplane.alerting import metrics
from controlplane.alerting.models import AlertEvent

logger = logging.getLogger(__name__)

Handler = Callable[[AlertEvent], str]
# Claimed per round: enough to amortise the claim, few enough that one worker
# does not sit on the backlog while others idle.
BATCH_SIZE = 100
LONGEST_NOTE = 2000
# Claims an event may use up: a consumer that kills its worker or outruns the lease
# every time must not hold its alert's later events back for ever.
MOST_ATTEMPTS = 5


@dataclass(frozen=True)
class Consumer:
    name: str
    handle: Handler


consumers: dict[str, Consumer] = {}


def register(name: str, handle: Handler) -> None:
    if name in consumers and consumers[name].handle is not handle:
        raise ValueError(f"the outbox consumer {name!r} is registered twice")
    consumers[name] = Consumer(name, handle)


def unregister(name: str) -> None:
    consumers.pop(name, None)


def lease() -> timedelta:
    return timedelta(seconds=settings.ALERT_EVENT_LEASE_SECONDS)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def notify_on_commit() -> None:
    """Ask a worker to dispatch soon after this transaction commits: once per
    transaction, however many events it wrote.

    A latency convenience only: if the message is lost, beat's tick finds the
    events anyway, since they are rows.
    """
    once_after_commit(_nudge)


def once_after_commit(nudge: Callable[[], None]) -> None:
    """Run `nudge` after this transaction commits, once however often it is asked for;
    nothing when ALERT_EVENT_NUDGE is off (tests that drive the tasks by hand)."""
    if not settings.ALERT_EVENT_NUDGE:
        return
    connection = transaction.get_connection()
    if any(entry[1] is nudge for entry in connection.run_on_commit):
        return
    transaction.on_commit(nudge)


def _nudge() -> None:
    from controlplane.alerting.tasks import dispatch_alert_events

    try:
        dispatch_alert_events.delay()
    except Exception:  # the broker is down: beat's tick will do
        logger.warning("could not queue the outbox dispatcher", exc_info=True)


def claim(now: datetime, limit: int = BATCH_SIZE) -> str:
    """Lease up to `limit` pending events, each the oldest pending one of its alert."""
    token = uuid.uuid4().hex
    earlier = AlertEvent.objects.filter(
        alert_id=OuterRef("alert_id"), dispatch=AlertEvent.Dispatch.PENDING, pk__lt=OuterRef("pk")
    )
    with transaction.atomic():
        ids = list(
            # skip_locked: a row another worker is handing over (its consumer slow, its
            # lease run out) is passed by, never waited on.
            AlertEvent.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(dispatch=AlertEvent.Dispatch.PENDING, dispatch_attempts__lt=MOST_ATTEMPTS)
            .filter(_free(now))
            .exclude(Exists(earlier))
            .order_by("pk")
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            AlertEvent.objects.filter(pk__in=ids).update(
                dispatch_claimed_until=now + lease(), dispatch_token=token
            )
    return token


def _free(now: datetime) -> Q:
    return Q(dispatch_claimed_until__isnull=True) | Q(dispatch_claimed_until__lt=now)


def give_up(now: datetime) -> int:
    """Fail the events whose every hand-over ended with no outcome (the worker died or
    ran past its lease), so the events behind them go on."""
    with transaction.atomic():
        ids = list(
            AlertEvent.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(dispatch=AlertEvent.Dispatch.PENDING, dispatch_attempts__gte=MOST_ATTEMPTS)
            .filter(_free(now))
            .values_list("pk", flat=True)
        )
        return AlertEvent.objects.filter(pk__in=ids).update(
            dispatch=AlertEvent.Dispatch.FAILED,
            dispatched_at=now,
            dispatch_claimed_until=None,
            dispatch_note=f"given up after {MOST_ATTEMPTS} attempts: each worker that took "
            "it died or outran its lease before recording an outcome",
        )


def dispatch(now: datetime | None = None, limit: int = BATCH_SIZE) -> int:
    """One round: claim, hand each claimed event to the consumers. Returns how many."""
    now = now or timezone.now()
    give_up(now)
    token = claim(now, limit)
    handled = 0
    for pk in (
        AlertEvent.objects.filter(dispatch_token=token, dispatch=AlertEvent.Dispatch.PENDING)
        .values_list("pk", flat=True)
        .order_by("pk")
    ):
        try:
            handled += _hand_over(pk, token)
        except Exception as error:  # the outbox's own failure: record it, go on
            logger.exception("handing over alert event %s failed", pk)
            _record_failure(pk, token, f"the outbox failed: {type(error).__name__}: {error}")
            handled += 1
    return handled


def _record_failure(pk: int, token: str, reason: str) -> None:
    AlertEvent.objects.filter(
        pk=pk, dispatch_token=token, dispatch=AlertEvent.Dispatch.PENDING
    ).update(
        dispatch=AlertEvent.Dispatch.FAILED,
        dispatched_at=timezone.now(),
        dispatch_note=_clean(reason),
        dispatch_claimed_until=None,
    )
    metrics.alert_events_dispatched.labels(outcome=AlertEvent.Dispatch.FAILED).inc()


def _clean(note: str) -> str:
    # A consumer's note or error text may hold anything; PostgreSQL refuses NUL.
    return note.replace("\x00", "")[:LONGEST_NOTE]


def drain(limit_rounds: int = 100) -> int:
    """Dispatch until nothing is claimable (an alert's next event becomes claimable
    once its previous one is done), for at most `limit_rounds` rounds or half a
    lease, so one task does not sit on a long backlog: the next tick goes on."""
    total = 0
    stop = time.monotonic() + lease().total_seconds() / 2
    for _ in range(limit_rounds):
        handled = dispatch()
        total += handled
        if not handled or time.monotonic() > stop:
            break
    return total


def _start(pk: int, token: str) -> bool:
    """Count the attempt and renew the lease, committed before any consumer runs:
    a worker killed while consumers run leaves the attempt on the row, and an event
    that was claimed but never started is never charged for it."""
    return bool(
        AlertEvent.objects.filter(
            pk=pk, dispatch_token=token, dispatch=AlertEvent.Dispatch.PENDING
        ).update(
            dispatch_attempts=F("dispatch_attempts") + 1,
            dispatch_claimed_until=timezone.now() + lease(),
        )
    )


def _hand_over(pk: int, token: str) -> bool:
    if not _start(pk, token):
        return False  # our lease ran out and another worker has it
    with transaction.atomic():
        event = (
            # Only the event's row: locking its alert too would hold up the alert's
            # own changes (an acknowledgement, an evaluation) while consumers run.
            AlertEvent.objects.select_for_update(of=("self",), skip_locked=True)
            .select_related("alert")
            .filter(pk=pk, dispatch_token=token, dispatch=AlertEvent.Dispatch.PENDING)
            .first()
        )
        if event is None:
            return False
        notes, failure = _consume(event)
        outcome = AlertEvent.Dispatch.FAILED if failure else AlertEvent.Dispatch.DONE
        note = "; ".join(([failure] if failure else []) + notes) or "no consumer"
        AlertEvent.objects.filter(pk=pk).update(
            dispatch=outcome,
            dispatched_at=timezone.now(),
            dispatch_note=_clean(note),
            dispatch_claimed_until=None,
        )
    metrics.alert_events_dispatched.labels(outcome=outcome).inc()
    if failure:
        logger.error("alert event %s failed in the outbox: %s", pk, failure)
    return True


class _ConsumerFailed(Exception):
    pass


def _consume(event: AlertEvent) -> tuple[list[str], str | None]:
    """Every consumer's note, or the first failure; a failure undoes every consumer's
    writes for this event (one savepoint), so retrying the event repeats nothing."""
    if event.kind not in AlertEvent.Kind.values:
        return [], f"unknown event kind {event.kind!r}"
    notes: list[str] = []
    try:
        with transaction.atomic():
            for consumer in list(consumers.values()):
                try:
                    note = consumer.handle(event)
                except Exception as error:
                    logger.exception(
                        "outbox consumer %s failed on event %s", consumer.name, event.pk
                    )
                    raise _ConsumerFailed(
                        f"{consumer.name} failed: {type(error).__name__}: {error}"
                    ) from error
                if note:
                    notes.append(f"{consumer.name}: {note}")
    except _ConsumerFailed as failure:
        return [], str(failure)
    return notes, None


def retry(events) -> int:
    """Put failed events back in the queue (after the consumer's bug is fixed)."""
    return events.filter(dispatch=AlertEvent.Dispatch.FAILED).update(
        dispatch=AlertEvent.Dispatch.PENDING,
        dispatch_claimed_until=None,
        dispatch_token="",
        dispatched_at=None,
    )
