"""When runs are expected: cron in a time zone across the 2026 DST changes, periods,
and which slot a run counts for. Pure: unsaved monitors, fixed times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlplane.jobs import schedule
from controlplane.jobs.models import JobMonitor


def utc(month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


def cron(expression: str, zone: str = "UTC", grace: timedelta = timedelta(minutes=15)):
    return JobMonitor(
        slug="payroll-export", cron=expression, time_zone=zone, grace=grace, schedule_kind="cron"
    )


def every(period: timedelta, grace: timedelta = timedelta(minutes=15)) -> JobMonitor:
    return JobMonitor(slug="sync", schedule_kind="period", period=period, grace=grace)


def chain(monitor: JobMonitor, start: datetime, count: int) -> list[datetime]:
    times, at = [], start
    for _ in range(count):
        at = schedule.next_expected(monitor, at)
        times.append(at)
    return times


@pytest.mark.parametrize(
    ("zone", "expression", "start", "expected"),
    [
        # Paris springs forward on 29 March (02:00 CET -> 03:00 CEST): 02:00 does not
        # exist, the run is at 03:00 CEST, 01:00 UTC; after it 02:00 is 00:00 UTC.
        (
            "Europe/Paris",
            "0 2 * * *",
            utc(3, 27, 12),
            [utc(3, 28, 1), utc(3, 29, 1), utc(3, 30, 0), utc(3, 31, 0)],
        ),
        # 02:30 does not exist either: 03:00 CEST, the first minute that does.
        (
            "Europe/Paris",
            "30 2 * * *",
            utc(3, 27, 12),
            [utc(3, 28, 1, 30), utc(3, 29, 1), utc(3, 30, 0, 30)],
        ),
        # Paris falls back on 25 October (03:00 CEST -> 02:00 CET): 02:00 happens twice,
        # the run happens once, at the first (00:00 UTC); the next day 02:00 is 01:00 UTC.
        (
            "Europe/Paris",
            "0 2 * * *",
            utc(10, 23, 12),
            [utc(10, 24, 0), utc(10, 25, 0), utc(10, 26, 1), utc(10, 27, 1)],
        ),
        # New York springs forward on 8 March (02:00 EST -> 03:00 EDT).
        (
            "America/New_York",
            "0 2 * * *",
            utc(3, 6, 12),
            [utc(3, 7, 7), utc(3, 8, 7), utc(3, 9, 6), utc(3, 10, 6)],
        ),
        # New York falls back on 1 November (02:00 EDT -> 01:00 EST): 02:00 happens once
        # (EST), 01:30 happens twice and runs once, at the first (EDT, 05:30 UTC).
        (
            "America/New_York",
            "0 2 * * *",
            utc(10, 30, 12),
            [utc(10, 31, 6), utc(11, 1, 7), utc(11, 2, 7)],
        ),
        (
            "America/New_York",
            "30 1 * * *",
            utc(10, 30, 12),
            [utc(10, 31, 5, 30), utc(11, 1, 5, 30), utc(11, 2, 6, 30)],
        ),
        ("UTC", "*/15 * * * *", utc(1, 1, 0, 7), [utc(1, 1, 0, 15), utc(1, 1, 0, 30)]),
    ],
)
def test_next_expected_follows_the_zone_across_dst(zone, expression, start, expected):
    assert chain(cron(expression, zone), start, len(expected)) == expected


@pytest.mark.parametrize(
    ("zone", "expression", "at", "expected"),
    [
        # At a scheduled time: that time (at or before).
        ("Europe/Paris", "0 2 * * *", utc(3, 29, 1), utc(3, 29, 1)),
        ("Europe/Paris", "0 2 * * *", utc(3, 29, 0, 59, 59), utc(3, 28, 1)),
        ("Europe/Paris", "0 2 * * *", utc(3, 30, 0, 0, 1), utc(3, 30, 0)),
        # During the second 02:00-03:00 of 25 October (CET): the run was the first 02:00.
        ("Europe/Paris", "0 2 * * *", utc(10, 25, 1, 30), utc(10, 25, 0)),
        ("Europe/Paris", "0 2 * * *", utc(10, 26, 0, 59), utc(10, 25, 0)),
        ("America/New_York", "0 2 * * *", utc(3, 8, 6, 59), utc(3, 7, 7)),
        ("America/New_York", "0 2 * * *", utc(3, 8, 7, 0, 0), utc(3, 8, 7)),
        ("America/New_York", "0 2 * * *", utc(11, 1, 6, 59), utc(10, 31, 6)),
        ("America/New_York", "30 1 * * *", utc(11, 1, 6, 45), utc(11, 1, 5, 30)),
    ],
)
def test_previous_expected_is_the_last_time_at_or_before(zone, expression, at, expected):
    assert schedule.previous_expected(cron(expression, zone), at) == expected


def test_previous_expected_includes_an_instant_with_microseconds():
    monitor = cron("0 2 * * *")
    assert schedule.previous_expected(monitor, utc(5, 1, 2).replace(microsecond=5)) == utc(5, 1, 2)


def test_next_and_previous_are_inverse_around_every_slot():
    # Every slot of a year of an hourly job in Paris, DST changes included.
    monitor = cron("0 * * * *", "Europe/Paris")
    at = utc(1, 1)
    for _ in range(24 * 366):
        following = schedule.next_expected(monitor, at)
        assert following > at
        assert schedule.previous_expected(monitor, following) == following
        assert schedule.previous_expected(monitor, following - timedelta(seconds=1)) <= at
        at = following


def test_period_schedule_is_one_period_after():
    monitor = every(timedelta(hours=6))
    assert schedule.next_expected(monitor, utc(3, 29, 1)) == utc(3, 29, 7)
    assert schedule.previous_expected(monitor, utc(3, 29, 1)) is None
    assert schedule.served_slot(monitor, utc(3, 29, 1)) is None


def test_a_rare_cron_is_found_years_away():
    monitor = cron("0 0 29 2 *")
    assert schedule.next_expected(monitor, utc(1, 1)) == datetime(2028, 2, 29, tzinfo=UTC)
    assert schedule.previous_expected(monitor, utc(1, 1)) == datetime(2024, 2, 29, tzinfo=UTC)


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule.next_expected(cron("0 2 * * *"), datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("expression", "grace", "at", "slot"),
    [
        # Daily 02:00 with 15 minutes' grace: a little early counts for today's slot,
        # late (however late) for the last slot.
        ("0 2 * * *", 15, utc(4, 1, 1, 58), utc(4, 1, 2)),
        ("0 2 * * *", 15, utc(4, 1, 1, 45), utc(4, 1, 2)),
        ("0 2 * * *", 15, utc(4, 1, 1, 44), utc(3, 31, 2)),
        ("0 2 * * *", 15, utc(4, 1, 2, 0), utc(4, 1, 2)),
        ("0 2 * * *", 15, utc(4, 1, 14, 0), utc(4, 1, 2)),
        # Every minute with 15 minutes' grace: the early tolerance is half a minute.
        ("* * * * *", 15, utc(4, 1, 2, 0, 29), utc(4, 1, 2, 0)),
        ("* * * * *", 15, utc(4, 1, 2, 0, 30), utc(4, 1, 2, 1)),
        ("* * * * *", 15, utc(4, 1, 2, 0, 31), utc(4, 1, 2, 1)),
    ],
)
def test_served_slot_counts_a_run_for_the_nearest_fair_slot(expression, grace, at, slot):
    monitor = cron(expression, grace=timedelta(minutes=grace))
    assert schedule.served_slot(monitor, at) == slot


def test_served_slot_across_spring_forward_in_paris():
    monitor = cron("0 2 * * *", "Europe/Paris")
    # 29 March: the 02:00 run happens at 03:00 CEST (01:00 UTC).
    assert schedule.served_slot(monitor, utc(3, 29, 0, 50)) == utc(3, 29, 1)
    assert schedule.served_slot(monitor, utc(3, 29, 0, 40)) == utc(3, 28, 1)
    assert schedule.served_slot(monitor, utc(3, 29, 5)) == utc(3, 29, 1)


def test_check_cron_names_the_problem():
    schedule.check_cron("0 2 * * *")
    with pytest.raises(ValueError, match="cronsim"):
        schedule.check_cron("61 * * * *")
    with pytest.raises(ValueError, match="cronsim"):
        schedule.check_cron("every day")


@pytest.mark.parametrize(
    ("monitor", "slot", "at", "expected"),
    [
        (cron("0 2 * * *"), utc(4, 1, 2), utc(4, 1, 1), utc(4, 2, 2)),
        (cron("0 2 * * *"), utc(4, 1, 2), utc(4, 3, 2), utc(4, 4, 2)),
        (cron("0 2 * * *"), utc(4, 1, 2), utc(4, 3, 1, 59), utc(4, 3, 2)),
        (every(timedelta(hours=6)), utc(4, 1, 2), utc(4, 1, 1), utc(4, 1, 8)),
        (every(timedelta(hours=6)), utc(4, 1, 2), utc(4, 1, 7, 59), utc(4, 1, 8)),
        (every(timedelta(hours=6)), utc(4, 1, 2), utc(4, 1, 8), utc(4, 1, 14)),
        (every(timedelta(hours=6)), utc(4, 1, 2), utc(4, 2, 3), utc(4, 2, 8)),
    ],
)
def test_following_slot_is_after_both(monitor, slot, at, expected):
    assert schedule.following_slot(monitor, slot, at) == expected
