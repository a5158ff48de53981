"""When a monitor's runs are expected, as pure functions: cron expressions in an IANA
time zone (cronsim, as Healthchecks uses) or a fixed period.

Cron times are computed in the monitor's zone and returned in UTC. Across a DST change
cronsim follows Debian cron for 5-field expressions with fixed minute and hour: a time
that does not exist that day (02:30 when clocks jump from 02:00 to 03:00) runs at the
first minute that does (03:00), and a time that happens twice (02:30 when clocks fall
back from 03:00 to 02:00) runs once, at its first occurrence.

A period schedule has no fixed times: its next run is due one period after the last
one, as a Healthchecks "simple" check, so `previous_expected` has nothing to say for it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

if TYPE_CHECKING:
    from controlplane.jobs.models import JobMonitor


def check_cron(expression: str) -> None:
    """Raise ValueError saying what is wrong with a cron expression."""
    try:
        CronSim(expression, datetime(2026, 1, 1, tzinfo=UTC))
    except CronSimError as error:
        raise ValueError(f"Not a cron expression cronsim can read: {error}.") from None


def _is_cron(monitor: JobMonitor) -> bool:
    return monitor.schedule_kind == "cron"


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("schedule times must be timezone-aware")
    return at


def _cron_times(monitor: JobMonitor, start: datetime, reverse: bool) -> CronSim:
    zone = ZoneInfo(monitor.time_zone or "UTC")
    return CronSim(monitor.cron.strip(), start.astimezone(zone), reverse=reverse)


def next_expected(monitor: JobMonitor, after: datetime) -> datetime:
    """The next scheduled start strictly after `after` (UTC): the cron's next time in the
    monitor's zone, or `after` plus the period."""
    after = _aware(after)
    if not _is_cron(monitor):
        return (after + monitor.period).astimezone(UTC)
    try:
        return next(_cron_times(monitor, after, reverse=False)).astimezone(UTC)
    except StopIteration:
        # cronsim gives up after 50 years without a match (30 February): never due.
        return datetime.max.replace(tzinfo=UTC)


def previous_expected(monitor: JobMonitor, at: datetime) -> datetime | None:
    """The last scheduled start at or before `at` (UTC); None for a period schedule
    (no fixed times) or a cron with no time in the past 50 years."""
    at = _aware(at)
    if not _is_cron(monitor):
        return None
    # cronsim's reverse iteration is strictly before its start and drops microseconds:
    # start one whole second after `at` so that `at` itself is included.
    start = at.replace(microsecond=0) + timedelta(seconds=1)
    try:
        return next(_cron_times(monitor, start, reverse=True)).astimezone(UTC)
    except StopIteration:
        return None


def early_tolerance(monitor: JobMonitor, gap: timedelta) -> timedelta:
    """How early a run may start and still count for the upcoming slot: the grace time,
    at most half the gap between two slots (so a run is never counted for a slot it is
    further from than from the previous one)."""
    return min(monitor.grace, gap / 2)


def served_slot(monitor: JobMonitor, at: datetime) -> datetime | None:
    """The scheduled time a run starting at `at` counts for (UTC), None for a period
    schedule. A run counts for the upcoming slot when it starts at most the early
    tolerance before it (a cron a little ahead of time), else for the last slot at or
    before it, however late it is."""
    at = _aware(at)
    if not _is_cron(monitor):
        return None
    previous = previous_expected(monitor, at)
    upcoming = next_expected(monitor, at)
    if previous is None:
        return upcoming if upcoming - at <= monitor.grace else None
    if upcoming - at <= early_tolerance(monitor, upcoming - previous):
        return upcoming
    return previous


def following_slot(monitor: JobMonitor, slot: datetime, at: datetime) -> datetime:
    """The first slot after `slot` that is also after `at` (UTC): for a period schedule,
    slots keep the rhythm of `slot`, one period apart."""
    slot, at = _aware(slot), _aware(at)
    if _is_cron(monitor):
        return next_expected(monitor, max(slot, at))
    if at < slot:
        return (slot + monitor.period).astimezone(UTC)
    return (slot + monitor.period * ((at - slot) // monitor.period + 1)).astimezone(UTC)
