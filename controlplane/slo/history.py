"""How SLO snapshots thin out as they age, so a year of history per SLO stays bounded.

By age (now - snapshot time):

    0 to 48 h        every snapshot
    48 h to 35 days  the first snapshot of each UTC hour
    35 to 400 days   the first snapshot of each UTC day
    over 400 days    none

Each band is half-open on its young side: a snapshot exactly 48 h old is still kept
whole, one exactly 400 days old is still in the daily band. "First" means the earliest
among the snapshots of that hour (or day) in that band; the board's charts and the
history API read whatever is left. Snapshots from the future (a clock ahead) count as
recent and are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

RECENT = timedelta(hours=48)
HOURLY_UNTIL = timedelta(days=35)
DAILY_UNTIL = timedelta(days=400)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def _aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at} has no time zone: pass aware datetimes")


def to_prune(times: Sequence[datetime], now: datetime) -> list[int]:
    """The indexes (ascending) into `times` of the snapshots to delete at `now`.

    `times` may come in any order; equal times count in index order (the lower index
    is "first"). Pruning what remains again at the same `now` deletes nothing more.
    """
    _aware(now)
    for at in times:
        _aware(at)
    seen: set[tuple[str, datetime]] = set()
    doomed = []
    for index in sorted(range(len(times)), key=lambda i: (times[i], i)):
        at = times[index]
        age = now - at
        if age <= RECENT:
            continue
        utc = at.astimezone(UTC)
        if age <= HOURLY_UNTIL:
            key = ("hour", utc.replace(minute=0, second=0, microsecond=0))
        elif age <= DAILY_UNTIL:
            key = ("day", utc.replace(hour=0, minute=0, second=0, microsecond=0))
        else:
            doomed.append(index)
            continue
        if key in seen:
            doomed.append(index)
        else:
            seen.add(key)
    return sorted(doomed)


def most_kept(evaluation_interval: timedelta) -> int:
    """The most snapshots one SLO keeps after pruning, when its snapshots are at least
    `evaluation_interval` apart and none is after `now`:

        48 h // interval + 1   (a closed 48 h band)
      + 33 * 24 + 1 = 793      (the hourly band spans 33 days: a span of 792 h that
                                does not start on the hour meets 793 UTC hours)
      + 365 + 1 = 366          (the daily band spans 365 days, likewise)

    1,736 for five-minute evaluations.
    """
    if evaluation_interval <= timedelta(0):
        raise ValueError(f"the evaluation interval must be positive: {evaluation_interval}")
    hourly = (HOURLY_UNTIL - RECENT) // HOUR + 1
    daily = (DAILY_UNTIL - HOURLY_UNTIL) // DAY + 1
    return RECENT // evaluation_interval + 1 + hourly + daily
