import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.slo.definition import Window
from controlplane.slo.maths import tiers
from controlplane.slo.windows import period_bounds, window_bounds, window_length

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
FR, US = "Europe/Paris", "America/New_York"
PARIS, NEW_YORK = ZoneInfo(FR), ZoneInfo(US)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# 2026: Paris springs forward on 29 March, falls back on 25 October; New York on
# 8 March and 1 November. Bounds are local midnights, written here in UTC.
PERIODS = [
    # period, zone, at, start (UTC), end (UTC), hours
    ("month", FR, utc(2026, 3, 15, 12), utc(2026, 2, 28, 23), utc(2026, 3, 31, 22), 743),
    ("month", FR, utc(2026, 10, 1), utc(2026, 9, 30, 22), utc(2026, 10, 31, 23), 745),
    ("month", FR, utc(2026, 6, 10), utc(2026, 5, 31, 22), utc(2026, 6, 30, 22), 720),
    ("month", FR, utc(2026, 2, 3), utc(2026, 1, 31, 23), utc(2026, 2, 28, 23), 672),
    ("month", US, utc(2026, 3, 9), utc(2026, 3, 1, 5), utc(2026, 4, 1, 4), 743),
    ("month", US, utc(2026, 11, 20), utc(2026, 11, 1, 4), utc(2026, 12, 1, 5), 721),
    ("week", FR, utc(2026, 3, 29, 12), utc(2026, 3, 22, 23), utc(2026, 3, 29, 22), 167),
    ("week", FR, utc(2026, 10, 25, 12), utc(2026, 10, 18, 22), utc(2026, 10, 25, 23), 169),
    ("week", FR, utc(2026, 4, 1), utc(2026, 3, 29, 22), utc(2026, 4, 5, 22), 168),
    ("week", US, utc(2026, 3, 8, 12), utc(2026, 3, 2, 5), utc(2026, 3, 9, 4), 167),
    ("week", US, utc(2026, 11, 1, 12), utc(2026, 10, 26, 4), utc(2026, 11, 2, 5), 169),
    ("quarter", FR, utc(2026, 2, 1), utc(2025, 12, 31, 23), utc(2026, 3, 31, 22), 2159),
    ("quarter", FR, utc(2026, 5, 1), utc(2026, 3, 31, 22), utc(2026, 6, 30, 22), 2184),
    ("quarter", FR, utc(2026, 11, 1), utc(2026, 9, 30, 22), utc(2026, 12, 31, 23), 2209),
    ("quarter", US, utc(2026, 3, 31), utc(2026, 1, 1, 5), utc(2026, 4, 1, 4), 2159),
    ("quarter", US, utc(2026, 12, 31), utc(2026, 10, 1, 4), utc(2027, 1, 1, 5), 2209),
    ("month", "UTC", utc(2026, 12, 31, 23, 59), utc(2026, 12, 1), utc(2027, 1, 1), 744),
]


@pytest.mark.parametrize(("period", "zone", "at", "start", "end", "hours"), PERIODS)
def test_calendar_periods_run_from_local_midnight_to_local_midnight(
    period, zone, at, start, end, hours
):
    found = period_bounds(period, zone, at)
    assert found == (start, end)
    assert all(bound.tzinfo is UTC for bound in found)
    assert end - start == hours * HOUR
    local = ZoneInfo(zone)
    assert start.astimezone(local).time() == end.astimezone(local).time() == datetime.min.time()


@pytest.mark.parametrize(
    ("at", "month"),
    [
        (utc(2026, 2, 28, 22, 59), 2),  # 23:59 in Paris: still February
        (utc(2026, 2, 28, 23, 0), 3),  # local midnight: the start belongs to March
        (datetime(2026, 3, 1, 0, 30, tzinfo=PARIS), 3),  # any zone in, the instant counts
        (datetime(2026, 2, 28, 18, 0, tzinfo=NEW_YORK), 3),  # already 1 March in Paris
        (utc(2026, 3, 31, 21, 59, 59), 3),
        (utc(2026, 3, 31, 22, 0), 4),  # the end is the next period's start
    ],
)
def test_a_period_is_half_open_at_local_midnight(at, month):
    start, end = period_bounds("month", "Europe/Paris", at)
    assert start <= at < end
    assert start.astimezone(PARIS).month == month


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "../../etc/passwd", "UTC+2"])
def test_an_unknown_zone_is_refused_by_name(zone):
    with pytest.raises(ValueError, match=re.escape(f"unknown time zone {zone!r}")):
        period_bounds("month", zone, utc(2026, 3, 1))


def test_a_naive_time_is_refused():
    with pytest.raises(ValueError, match="no time zone"):
        period_bounds("week", "UTC", datetime(2026, 3, 1))


def test_an_unknown_period_is_refused():
    with pytest.raises(ValueError, match="unknown period 'year'"):
        period_bounds("year", "UTC", utc(2026, 3, 1))  # type: ignore[arg-type]


def test_a_rolling_window_covers_its_length_up_to_now():
    at = utc(2026, 3, 29, 12)
    window = Window.named("28d", "Europe/Paris")  # a rolling window ignores its zone
    assert window_bounds(window, at) == (at - 28 * DAY, at)
    assert window_length(window, at) == 28 * DAY


def test_a_calendar_window_covers_its_period_so_far_and_spreads_over_all_of_it():
    at = utc(2026, 3, 15, 12)
    window = Window.named("month", "Europe/Paris")
    assert window_bounds(window, at) == (utc(2026, 2, 28, 23), at)
    assert window_length(window, at) == 743 * HOUR
    # The factors of the Paris March are scaled by 743 h, not 31 days.
    assert tiers(window_length(window, at))[0].factor == pytest.approx(0.02 * 743)


@pytest.mark.parametrize("window", [Window(), Window(length=timedelta(0)), Window(length=-DAY)])
def test_a_window_without_a_length_or_period_is_refused(window):
    with pytest.raises(ValueError, match="window"):
        window_length(window, utc(2026, 3, 1))
    with pytest.raises(ValueError, match="window"):
        window_bounds(window, utc(2026, 3, 1))


@pytest.mark.parametrize(
    ("period", "zone", "at", "start", "end"),
    [
        # Paraguay sprang forward at midnight: 1 October 2023 began at 01:00 (-03:00).
        ("month", "America/Asuncion", utc(2023, 10, 15), utc(2023, 10, 1, 4), utc(2023, 11, 1, 3)),
        ("month", "America/Asuncion", utc(2023, 9, 15), utc(2023, 9, 1, 4), utc(2023, 10, 1, 4)),
        # (September ends where that October begins.)
        # Iran, Monday 22 March 2021: from 00:00 +03:30 straight to 01:00 +04:30.
        (
            "week",
            "Asia/Tehran",
            utc(2021, 3, 24),
            utc(2021, 3, 21, 20, 30),
            utc(2021, 3, 28, 19, 30),
        ),
    ],
)
def test_a_period_whose_midnight_dst_skips_starts_at_its_first_instant(
    period, zone, at, start, end
):
    assert period_bounds(period, zone, at) == (start, end)
    tz = ZoneInfo(zone)
    for bound in (start, end):  # each the first instant of its local day
        just_before = bound - timedelta(microseconds=1)
        assert just_before.astimezone(tz).date() < bound.astimezone(tz).date()


# Properties.

zones = st.sampled_from(
    ["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)
periods = st.sampled_from(["week", "month", "quarter"])


@given(periods, zones, instants)
def test_a_period_contains_its_instant_and_starts_where_the_previous_ends(period, zone, at):
    start, end = period_bounds(period, zone, at)
    assert start <= at < end
    assert period_bounds(period, zone, start) == (start, end)
    assert period_bounds(period, zone, end)[0] == end
    assert period_bounds(period, zone, start - timedelta(microseconds=1))[1] == start
    local = ZoneInfo(zone)
    first = start.astimezone(local)
    assert first.time() == datetime.min.time()
    if period == "week":
        assert first.weekday() == 0
    else:
        assert first.day == 1
        assert first.month in ((1, 4, 7, 10) if period == "quarter" else range(1, 13))
    # DST moves a period by at most an hour (Lord Howe: half an hour) either way.
    days = (end.astimezone(local).date() - first.date()).days
    assert abs((end - start) - days * DAY) <= HOUR
