"""When a rule is evaluated: on fixed slots, as Prometheus schedules its groups.

Each evaluation serves a slot; the next slot is the previous one plus the
interval, whenever the evaluation finished. A slot missed (a busy worker, a pause)
is skipped rather than run late in a bunch, so a rule with `for: 5m` and a 1m
interval fires five minutes after its condition became true, not six.
"""

from __future__ import annotations

from datetime import datetime, timedelta


def next_slot(slot: datetime, interval: timedelta, now: datetime) -> datetime:
    """The first slot after `now` of the series `slot + k * interval`."""
    if interval <= timedelta(0):
        raise ValueError(f"the interval must be positive, got {interval}")
    if now < slot:
        return slot + interval
    missed = (now - slot) // interval
    return slot + (missed + 1) * interval


def current_slot(due: datetime, interval: timedelta, now: datetime) -> datetime:
    """The latest slot of `due + k * interval` not after `now` (`due` itself when not
    yet passed): the slot an evaluation serves. After a backlog (workers down, a
    queue behind) it is the newest missed slot, not the oldest, as Prometheus
    evaluates a group that fell behind at its latest tick; `for` then counts from
    a slot that really happened, not from a stale one minutes back."""
    if interval <= timedelta(0):
        raise ValueError(f"the interval must be positive, got {interval}")
    if now <= due:
        return due
    return due + ((now - due) // interval) * interval


def lag(slot: datetime | None, started: datetime) -> float:
    """Seconds between a slot and the start of its evaluation (never negative)."""
    if slot is None:
        return 0.0
    return max(0.0, (started - slot).total_seconds())
