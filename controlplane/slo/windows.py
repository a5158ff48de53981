"""Which stretch of time an SLO window covers, rolling or calendar-aligned, in pure
functions (zoneinfo, no clock: the caller passes `at`).

Calendar periods start and end at local midnight in the SLO's IANA zone, so their
length in hours follows daylight saving time: Europe/Paris's March 2026 is 743 h long,
its October 745 h. Everything returned is an aware UTC datetime.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from controlplane.slo.definition import Period, Window


def zone(time_zone: str) -> ZoneInfo:
    """The IANA zone of that name; ValueError naming it when there is none."""
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(
            f"unknown time zone {time_zone!r}: use an IANA name such as Europe/Paris"
        ) from None


def _aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at} has no time zone: pass an aware datetime")


def _first_day(period: Period, day: date) -> date:
    if period == "week":
        return day - timedelta(days=day.weekday())  # Monday
    if period == "month":
        return day.replace(day=1)
    if period == "quarter":
        return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    raise ValueError(f"unknown period {period!r}: use week, month or quarter")


def _next_first_day(period: Period, first: date) -> date:
    if period == "week":
        return first + timedelta(days=7)
    months = 1 if period == "month" else 3
    year, month = divmod(first.month - 1 + months, 12)
    return date(first.year + year, month + 1, 1)


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    # fold=0: where DST makes midnight happen twice, the day starts at the first; where
    # it skips midnight (America/Asuncion, 1 October 2023), zoneinfo reads 00:00 with
    # the offset before the jump, which is the day's first instant (01:00 local).
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def period_bounds(period: Period, time_zone: str, at: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the calendar period (week from Monday, month, quarter from
    January, April, July or October) containing `at`, from local midnight to local
    midnight in `time_zone`, as aware UTC datetimes. `at` exactly at a period's start
    belongs to that period."""
    tz = zone(time_zone)
    _aware(at)
    first = _first_day(period, at.astimezone(tz).date())
    return _midnight(first, tz), _midnight(_next_first_day(period, first), tz)


def _check(window: Window) -> None:
    if window.length is not None:
        if window.length <= timedelta(0):
            raise ValueError(f"a rolling window must be longer than zero: {window.length}")
    elif window.period is None:
        raise ValueError("a window needs a length (rolling) or a period (calendar)")


def window_bounds(window: Window, at: datetime) -> tuple[datetime, datetime]:
    """What the SLI covers when evaluated at `at`: (at - length, at) for a rolling
    window; (start of the calendar period, at) for a calendar one."""
    _check(window)
    _aware(at)
    if window.length is not None:
        return at - window.length, at
    start, _ = period_bounds(window.period, window.time_zone, at)  # type: ignore[arg-type]
    return start, at


def window_length(window: Window, at: datetime) -> timedelta:
    """The whole length the budget is spread over: the rolling length, or the actual
    length of the calendar period containing `at` (DST included). Burn-rate factors
    and the time to exhaustion use it."""
    _check(window)
    if window.length is not None:
        return window.length
    start, end = period_bounds(window.period, window.time_zone, at)  # type: ignore[arg-type]
    return end - start
