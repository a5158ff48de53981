"""The pace of each destination and when notifications are bundled, as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlplane.paging import pace
from controlplane.paging.pace import PACES, Pace, admissible, held_back, plan

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
S = timedelta(seconds=1)
SLACK = Pace(S, burst=3, bundle=20)
ONE_AT_A_TIME = Pace(S, burst=1, bundle=1)


@pytest.mark.parametrize(
    ("pace_at", "allowed"),
    [
        (None, 3),  # never sent: the whole burst
        (NOW - 10 * S, 3),  # quiet for a while: no more than the burst
        (NOW, 3),
        (NOW + S, 2),
        (NOW + 2 * S, 1),
        (NOW + 2.5 * S, 0),  # half a second too early for the next one
        (NOW + 3 * S, 0),
        (NOW + 3600 * S, 0),  # held back by a Retry-After
    ],
)
def test_how_many_messages_may_go_now(pace_at, allowed):
    assert admissible(SLACK, pace_at, NOW) == allowed


@pytest.mark.parametrize(
    ("pace_at", "waiting", "sizes", "next_in"),
    [
        # Fits what the pace lets go: each alone.
        (None, 1, (1,), 0),
        (None, 3, (1, 1, 1), 1),
        # More than that: bundled, as few messages as the bundle size allows.
        (None, 4, (4,), 0),
        (None, 20, (20,), 0),
        (None, 21, (20, 1), 0),
        (None, 45, (20, 20, 5), 1),
        (None, 70, (20, 20, 20), 1),  # the burst is spent: the last 10 wait a second
        (NOW + 2 * S, 30, (20,), 1),  # one message allowed: one bundle, 10 wait
        (NOW + 3 * S, 5, (), 1),  # none allowed: all wait for the pace
        (None, 0, (), 0),
    ],
)
def test_what_goes_now_and_in_how_many_messages(pace_at, waiting, sizes, next_in):
    step = plan(SLACK, pace_at, NOW, waiting)
    assert step.sizes == sizes
    assert step.taken == sum(sizes)
    assert step.next_at == NOW + next_in * S
    assert step.pace_at == max(pace_at or NOW, NOW) + len(sizes) * S


@pytest.mark.parametrize(
    ("pace_at", "waiting", "sizes"),
    [(None, 1, (1,)), (None, 5, (1,)), (NOW + S, 5, ())],
)
def test_a_destination_that_is_never_bundled_waits_instead(pace_at, waiting, sizes):
    assert plan(ONE_AT_A_TIME, pace_at, NOW, waiting).sizes == sizes


def test_pagerduty_is_never_bundled_and_no_minute_holds_more_than_120_events():
    pagerduty = PACES["pagerduty"]
    assert pagerduty.bundle == 1
    sent: list[datetime] = []
    pace_at, now = None, NOW
    for _ in range(3000):  # a storm that never ends, a claim every 0.1 s for 5 minutes
        step = plan(pagerduty, pace_at, now, waiting=1000)
        assert set(step.sizes) <= {1}
        sent += [now] * len(step.sizes)
        pace_at, now = step.pace_at, now + S / 10
    busiest = max(sum(1 for at in sent if start <= at < start + 60 * S) for start in sent)
    assert busiest <= 120
    assert len(sent) >= 4 * 100, "the sustained pace is about 100 a minute"


@pytest.mark.parametrize("kind", ["slack", "email", "webhook"])
def test_a_storm_goes_out_in_bundles_within_each_kinds_pace(kind):
    paced = PACES[kind]
    pace_at, now, waiting, messages = None, NOW, 500, 0
    while waiting:
        step = plan(paced, pace_at, now, waiting)
        waiting -= step.taken
        messages += len(step.sizes)
        pace_at, now = step.pace_at, max(step.next_at, now + S / 10)
    assert messages <= 500 // paced.bundle + paced.burst
    assert now - NOW < timedelta(seconds=30), "a storm of 500 is out in seconds, not minutes"


@pytest.mark.parametrize(
    ("pace_at", "seconds", "allowed_at"),
    [
        (None, 30, NOW + 30 * S),
        (NOW + 2 * S, 30, NOW + 30 * S),
        (NOW + 100 * S, 30, NOW + 98 * S),  # already held back longer: unchanged
    ],
)
def test_a_retry_after_holds_the_whole_channel_back(pace_at, seconds, allowed_at):
    held = held_back(SLACK, pace_at, NOW, seconds)
    assert admissible(SLACK, held, allowed_at - S / 10) == 0
    assert admissible(SLACK, held, allowed_at) == 1


def test_every_kind_has_a_pace():
    from controlplane.paging.channels import ChannelKind

    assert set(PACES) == {kind.value for kind in ChannelKind}
    assert all(p.burst >= 1 and p.bundle >= 1 for p in pace.PACES.values())


@pytest.mark.parametrize(
    ("pace_at", "waiting", "most", "sizes", "next_in"),
    [
        # What the pace lets go alone stays alone: the round's limit only defers it.
        (None, 3, 2, (1, 1), 0),
        (None, 70, 2, (20, 20), 0),
        (None, 70, 1, (20,), 0),
        (NOW + 2 * S, 30, 2, (20,), 1),  # the pace, not the round, holds the rest
        (None, 2, 5, (1, 1), 0),
    ],
)
def test_a_round_sends_at_most_so_many_messages_to_a_channel(
    pace_at, waiting, most, sizes, next_in
):
    step = plan(SLACK, pace_at, NOW, waiting, most=most)
    assert step.sizes == sizes
    assert step.next_at == NOW + next_in * S
    assert step.pace_at == max(pace_at or NOW, NOW) + len(sizes) * S
