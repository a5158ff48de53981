"""How fast each destination is sent to, and when waiting notifications go out bundled.

Pure: no database, no clock. The delivery worker (engine.claim) asks `plan()` under the
channel's row lock and stores the returned `pace_at` on the channel's health row.

Each channel kind has a `Pace`: one message per `interval` on average, `burst`
messages at once after a quiet spell (a generic cell rate algorithm: `pace_at` is the
theoretical arrival time of the next message, and a message may go while `pace_at` is
at most `(burst - 1) * interval` ahead of now). The figures follow what the receivers
accept (PROTOCOLS.md, "Rate limits of the receivers"):

    kind        one message per   burst   alerts in one message
    slack       1 s               3       20  (Slack's one a second, short bursts)
    pagerduty   0.6 s             20      1   (120 events in any minute; never bundled)
    email       1 s               5       50
    webhook     0.2 s             20      100

While the waiting notifications of a channel fit what its pace lets go now, each goes
as its own message. When more are waiting, they go **bundled**: as few messages as
the bundle size allows, within what the pace lets go; the rest wait for the pace and go
in the next bundle. A storm of 200 Slack notifications is ten messages over ten
seconds, not 200 over four minutes. PagerDuty events are never bundled (each alert is
its own incident with its own dedup_key): past its pace they wait.

A receiver that answers 429 with Retry-After holds the whole channel back for that
long (`held_back`), not only the notification that met it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from controlplane.paging.channels import ChannelKind
from controlplane.paging.payloads import (
    EMAIL_BUNDLE_LIMIT,
    SLACK_BUNDLE_LIMIT,
    WEBHOOK_BUNDLE_LIMIT,
)


@dataclass(frozen=True)
class Pace:
    interval: timedelta  # one message per interval, on average
    burst: int  # messages that may go at once after a quiet spell
    bundle: int  # most alerts in one message; 1: never bundled

    @property
    def tolerance(self) -> timedelta:
        return self.interval * (self.burst - 1)


PACES: dict[str, Pace] = {
    ChannelKind.SLACK: Pace(timedelta(seconds=1), burst=3, bundle=SLACK_BUNDLE_LIMIT),
    # 100 a minute sustained plus a burst of 20: no 60 s window holds more than 120.
    ChannelKind.PAGERDUTY: Pace(timedelta(seconds=0.6), burst=20, bundle=1),
    ChannelKind.EMAIL: Pace(timedelta(seconds=1), burst=5, bundle=EMAIL_BUNDLE_LIMIT),
    ChannelKind.WEBHOOK: Pace(timedelta(seconds=0.2), burst=20, bundle=WEBHOOK_BUNDLE_LIMIT),
}


@dataclass(frozen=True)
class Plan:
    """What may go now: `sizes[i]` notifications in the i-th message (1: on its own),
    in the order they wait; the rest wait until `next_at`."""

    sizes: tuple[int, ...]
    pace_at: datetime  # the channel's pace after these messages
    next_at: datetime  # when the next message may go

    @property
    def taken(self) -> int:
        return sum(self.sizes)


def admissible(pace: Pace, pace_at: datetime | None, now: datetime) -> int:
    """How many messages may go at `now`."""
    due = max(pace_at or now, now)
    room = now + pace.tolerance - due
    if room < timedelta(0):
        return 0
    return room // pace.interval + 1


def plan(
    pace: Pace, pace_at: datetime | None, now: datetime, waiting: int, most: int | None = None
) -> Plan:
    """Which of `waiting` notifications go now, and in how many messages: at most `most`
    of them (what one delivery round can send within its lease); those the pace would
    let go but `most` keeps back are due again at once, as they would have gone."""
    allowed = admissible(pace, pace_at, now)
    if waiting <= allowed:
        sizes: tuple[int, ...] = (1,) * waiting
    else:
        messages = min(allowed, math.ceil(waiting / pace.bundle))
        sizes = tuple(min(pace.bundle, waiting - i * pace.bundle) for i in range(messages))
    if most is not None:
        sizes = sizes[:most]
    moved = max(pace_at or now, now) + pace.interval * len(sizes)
    return Plan(sizes, moved, max(moved - pace.tolerance, now))


def held_back(pace: Pace, pace_at: datetime | None, now: datetime, seconds: float) -> datetime:
    """The pace after a receiver asked us to wait `seconds` (Retry-After): nothing more
    goes to it before then."""
    return max(pace_at or now, now + timedelta(seconds=seconds) + pace.tolerance)
