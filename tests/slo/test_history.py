import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.slo.history import DAILY_UNTIL, HOURLY_UNTIL, RECENT, most_kept, to_prune

NOW = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def kept(times, now=NOW):
    doomed = set(to_prune(times, now))
    return [at for i, at in enumerate(times) if i not in doomed]


@pytest.mark.parametrize(
    ("ages", "pruned"),
    [
        ([], []),
        # The last 48 h: everything, however close together.
        ([timedelta(0), MINUTE, MINUTE, 47 * HOUR, RECENT], []),
        # 48 h to 35 days: the first of each UTC hour (NOW is 12:30, so these two ages
        # are 10:00 and 10:10 two days and more back: one hour).
        ([RECENT + 150 * MINUTE, RECENT + 140 * MINUTE], [1]),
        # 10:50 and 11:10 are two hours: both kept.
        ([RECENT + 100 * MINUTE, RECENT + 80 * MINUTE], []),
        # Across the 48 h line the recent one is kept whatever its hour.
        ([RECENT + MINUTE, RECENT - MINUTE], []),
        # 35 to 400 days: the first of each UTC day.
        ([40 * DAY, 40 * DAY + HOUR, 40 * DAY - HOUR, 41 * DAY], [0, 2]),
        # Exactly 400 days is kept, older is not.
        ([DAILY_UNTIL, DAILY_UNTIL + MINUTE, 3 * DAILY_UNTIL], [1, 2]),
        # A clock ahead: kept.
        ([-HOUR, -MINUTE], []),
    ],
)
def test_what_is_pruned(ages, pruned):
    assert to_prune([NOW - age for age in ages], NOW) == pruned


def test_the_input_may_come_in_any_order_and_equal_times_keep_the_lowest_index():
    at = NOW - 3 * DAY
    times = [at + 20 * MINUTE, at, at + 5 * MINUTE, at]
    assert to_prune(times, NOW) == [0, 2, 3]


def test_hours_and_days_are_utc_whatever_zone_the_times_are_in():
    paris = ZoneInfo("Europe/Paris")
    # 23:30 and 00:30 on different local days in Paris, but one UTC day (22:30, 23:30).
    times = [datetime(2026, 3, 1, 23, 30, tzinfo=paris), datetime(2026, 3, 2, 0, 30, tzinfo=paris)]
    assert to_prune(times, NOW) == [1]


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="no time zone"):
        to_prune([datetime(2026, 1, 1)], NOW)
    with pytest.raises(ValueError, match="no time zone"):
        to_prune([], datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("interval", "bound"),
    [(5 * MINUTE, 576 + 1 + 793 + 366), (MINUTE, 2880 + 1 + 793 + 366), (7 * MINUTE, 411 + 1160)],
)
def test_most_kept(interval, bound):
    assert most_kept(interval) == bound


def test_most_kept_needs_an_interval():
    with pytest.raises(ValueError, match="positive"):
        most_kept(timedelta(0))


@pytest.mark.parametrize("interval", [5 * MINUTE, 7 * MINUTE, HOUR + MINUTE, DAY])
def test_a_year_and_more_of_evaluations_comes_down_to_the_bound(interval):
    # Evaluations every interval for 420 days up to now, now off the hour so the hourly
    # and daily bands each meet one partial hour or day more.
    times = [NOW - n * interval for n in range(420 * DAY // interval)]
    remaining = kept(times)
    assert len(remaining) <= most_kept(interval)
    if interval == 5 * MINUTE:
        assert len(remaining) == most_kept(interval)  # the bound is reached
    assert to_prune(remaining, NOW) == []
    assert min(remaining) >= NOW - DAILY_UNTIL


def test_a_shuffled_year_of_evaluations_prunes_as_the_sorted_one():
    times = [NOW - n * 5 * MINUTE for n in range(120_000)]  # 416 days
    shuffled = random.Random(12).sample(times, len(times))
    assert sorted(kept(shuffled)) == sorted(kept(times))
    assert len(kept(shuffled)) == most_kept(5 * MINUTE)


# Properties.

intervals = st.integers(min_value=1, max_value=3 * 24 * 60).map(lambda m: m * MINUTE)
# Gaps between successive snapshots: dense runs, hours, days and gulfs past 400 days.
gaps = st.one_of(
    st.integers(0, 90),
    st.integers(0, 3 * 24 * 60),
    st.integers(0, 500 * 24 * 60),
).map(lambda m: m * MINUTE + timedelta(seconds=17))
nows = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)


@st.composite
def histories(draw):
    """(interval, times up to now at least interval apart, now), in a random order."""
    interval = draw(intervals)
    now = draw(nows)
    at = now - draw(gaps)
    times = []
    for gap in draw(st.lists(gaps, max_size=300)):
        times.append(at)
        at -= interval + gap
    return interval, draw(st.permutations(times)), now


@given(histories())
def test_what_is_kept_never_exceeds_the_bound_and_pruning_again_prunes_nothing(history):
    interval, times, now = history
    doomed = to_prune(times, now)
    assert doomed == sorted(set(doomed))
    remaining = [at for i, at in enumerate(times) if i not in set(doomed)]
    assert len(remaining) <= most_kept(interval)
    assert to_prune(remaining, now) == []


ages = st.timedeltas(min_value=-HOUR, max_value=450 * DAY)


@given(st.lists(ages, max_size=200), nows)
def test_each_band_keeps_what_it_promises(ages, now):
    times = [now - age for age in ages]
    remaining = kept(times, now)
    recent = [at for at in times if now - at <= RECENT]
    assert sorted(at for at in remaining if now - at <= RECENT) == sorted(recent)
    assert all(now - at <= DAILY_UNTIL for at in remaining)
    for band, floor, young, old in [
        ("hour", HOUR, RECENT, HOURLY_UNTIL),
        ("day", DAY, HOURLY_UNTIL, DAILY_UNTIL),
    ]:
        in_band = [at for at in times if young < now - at <= old]
        kept_in_band = sorted(at for at in remaining if young < now - at <= old)
        firsts = {}
        for at in sorted(in_band):
            firsts.setdefault((at - datetime.min.replace(tzinfo=UTC)) // floor, at)
        assert kept_in_band == sorted(firsts.values()), band
