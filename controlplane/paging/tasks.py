"""Celery tasks of paging; their schedules live in django-celery-beat (seeded by a
data migration)."""

from __future__ import annotations

from celery import shared_task

from controlplane.paging import engine


@shared_task(name="paging.escalate", ignore_result=True)
def escalate() -> int:
    """Beat's tick (every second): write the notifications whose step has come."""
    return engine.escalate_due()


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
