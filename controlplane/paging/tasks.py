"""Celery tasks of paging; their schedules live in django-celery-beat (seeded by a
data migration)."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task

from controlplane.paging import engine

logger = logging.getLogger(__name__)


@shared_task(name="paging.escalate", ignore_result=True)
def escalate(look_ahead: bool = True) -> int:
    """Beat's tick (every second): write the notifications whose step has come, and
    ask for one run at the first step due before the next tick, so a step waits for a
    worker, not for the tick. Only the tick looks ahead: the runs it asks for do not,
    so they never chain."""
    written = engine.escalate_due()
    if look_ahead and (at := engine.next_due()) is not None:
        try:
            escalate.apply_async((False,), eta=at, expires=at + timedelta(seconds=30))
        except Exception:  # the broker is down: the next tick escalates
            logger.warning("could not queue an escalation run", exc_info=True)
    return written


@shared_task(name="paging.deliver_notifications", ignore_result=True)
def deliver_notifications() -> dict[str, int]:
    """Send what is due, round after round while there is more (beat's tick every
    second, and a nudge after every commit that wrote notifications)."""
    tally: dict[str, int] = {}
    for _ in range(MOST_ROUNDS):
        done = engine.deliver_due()
        if not done:
            break
        for state, count in done.items():
            tally[state] = tally.get(state, 0) + count
    return tally


# Rounds of one task: a backlog is shared between workers (each claims its own batch)
# rather than held by the first to wake.
MOST_ROUNDS = 10
