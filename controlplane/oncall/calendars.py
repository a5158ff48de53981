"""Reading ICS calendars into occurrences: pure, no I/O.

A feed is parsed with `icalendar`, Google's `X-WR-TIMEZONE` calendars are put in
standard form by `x-wr-timezone`, and recurrences (RRULE, RDATE, EXDATE, and
RECURRENCE-ID exceptions) are expanded by `recurring-ical-events`. What this module
adds is the step from wall-clock times to instants, where DST makes the answer a
choice (docs/oncall.md, "Daylight saving time"):

- a shift **starts at the first occurrence** of its wall-clock time and **ends at the
  last**: a handover at 02:30 on the night clocks go back makes the two shifts overlap
  for the repeated hour instead of leaving it to nobody;
- a wall-clock time the spring change skips is read with the offset in force before
  the change (02:30 Paris on the last Sunday of March is 03:30 summer time), for starts
  and ends alike, so a handover there leaves no gap either;
- recurrences are expanded in wall-clock time (RFC 5545), so a daily 09:00 shift
  stays at 09:00 local on both sides of a change.

Floating times (no TZID, no `Z`) and all-day events are read in the schedule's time
zone. Every way a feed can be unfit is one class of the closed `CalendarError` set,
each message ours (never the feed's text), saying what to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal

import icalendar
import recurring_ical_events
import x_wr_timezone

# Occurrences one feed may expand to within the window (bounded from its rules before
# expanding): an hourly rotation over the six weeks read is about 1 000; a
# FREQ=MINUTELY rule is a mistake that would keep a worker busy for minutes.
MOST_OCCURRENCES = 5000
# Occurrences a feed's rules may step through from their DTSTART to the window's end (a
# few seconds of expansion at most): a weekly rota begun in 2010 is a thousand.
MOST_STEPS = 200_000

Edge = Literal["start", "end"]


class CalendarError(Exception):
    """A feed that cannot be read as an on-call calendar. `message` is ours, one line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class HtmlPage(CalendarError):
    def __init__(self) -> None:
        super().__init__(
            "is an HTML page, not a calendar: use the calendar's ICS (iCal) address, "
            "not the address of its web page"
        )


class NotACalendar(CalendarError):
    """Garbage, a truncated file, or an iCalendar object that is not a VCALENDAR."""

    def __init__(self, what: str) -> None:
        super().__init__(f"is not an iCalendar file ({what})")


class TooLarge(CalendarError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"is larger than {limit // (1024 * 1024)} MiB, the most that is read")
        self.limit = limit


class NoEvents(CalendarError):
    def __init__(self) -> None:
        super().__init__("has no events (VEVENT) at all: is it the right calendar?")


class UnknownTimeZone(CalendarError):
    def __init__(self, tzid: str, uid: str) -> None:
        super().__init__(
            f"names the time zone {tzid[:80]!r} (event {uid[:80]!r}), which is neither an "
            "IANA zone nor defined by a VTIMEZONE in the calendar"
        )
        self.tzid = tzid


class TooManyOccurrences(CalendarError):
    def __init__(self) -> None:
        super().__init__(
            f"repeats into more than {MOST_OCCURRENCES} occurrences within the schedule's "
            "horizon: is an RRULE's frequency too fine (hourly shifts or longer are expected)?"
        )


class TooManySteps(CalendarError):
    def __init__(self) -> None:
        super().__init__(
            f"has a rule that repeats more than {MOST_STEPS} times between its start and "
            "the schedule's horizon: start the rotation from a recent date"
        )


class BrokenEvent(CalendarError):
    """An event whose dates cannot be read (no DTSTART, an RRULE that is not one...)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"has an event whose dates or recurrence cannot be read ({what})")


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of an event, in UTC, and the names it gives for who is on it:
    its ATTENDEE addresses (mailto: left out), or else its SUMMARY."""

    uid: str
    start: datetime
    end: datetime
    attendees: tuple[str, ...]
    summary: str

    @property
    def names(self) -> tuple[str, ...]:
        if self.attendees:
            return self.attendees
        return (self.summary,) if self.summary else ()


def instant(wall: datetime, edge: Edge) -> datetime:
    """The UTC instant of an aware wall-clock time, as a shift's `edge` (module doc).

    Ambiguous (the repeated hour): a start is its first occurrence, an end its last.
    Skipped (the spring gap): read with the offset in force before the change,
    whichever the edge, so an end and a start there are the same instant.
    """
    first = wall.replace(fold=0)
    second = wall.replace(fold=1)
    before, after = first.utcoffset(), second.utcoffset()
    if before is None or after is None:
        raise ValueError("instant() needs an aware datetime")
    repeated = after < before
    chosen = second if (repeated and edge == "end") else first
    return chosen.astimezone(UTC)


def _wall(value: date | datetime, zone: tzinfo) -> datetime:
    """A DTSTART/DTEND value as an aware wall-clock time: floating times and dates in
    the schedule's zone (a date is its midnight)."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0))
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value


def _check_size_and_kind(body: bytes, limit: int) -> bytes:
    if len(body) > limit:
        raise TooLarge(limit)
    text = body.removeprefix(b"\xef\xbb\xbf").lstrip()
    head = text[:512].lower()
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body", b"<")):
        raise HtmlPage()
    if not text:
        raise NotACalendar("it is empty")
    if not head.startswith(b"begin:vcalendar"):
        raise NotACalendar("it does not start with BEGIN:VCALENDAR")
    return text


def parse(body: bytes, limit: int) -> icalendar.Calendar:
    """The calendar in standard form (X-WR-TIMEZONE applied), or a CalendarError."""
    text = _check_size_and_kind(body, limit)
    try:
        calendar = icalendar.Calendar.from_ical(text)
    except (ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError):
        # icalendar's messages quote the offending line: the feed's text stays out.
        raise NotACalendar("a line of it cannot be parsed") from None
    if not isinstance(calendar, icalendar.Calendar) or calendar.name != "VCALENDAR":
        raise NotACalendar("it holds no VCALENDAR")
    events = calendar.walk("VEVENT")
    if not events:
        raise NoEvents()
    for event in events:
        if "DTSTART" not in event:
            raise BrokenEvent(f"event {str(event.get('UID', ''))[:80]!r} has no DTSTART")
        _check_time_zones(event)
    try:
        return x_wr_timezone.to_standard(calendar)
    except Exception:  # the package raises whatever its parsing meets
        raise NotACalendar("its X-WR-TIMEZONE cannot be applied") from None


# Properties whose TZID must be known for the event's times to mean anything.
_TIMED = ("DTSTART", "DTEND", "RECURRENCE-ID", "EXDATE", "RDATE")


def _check_time_zones(event: icalendar.Event) -> None:
    uid = str(event.get("UID", ""))
    for name in _TIMED:
        values = event.get(name)
        for prop in values if isinstance(values, list) else [values]:
            if prop is None:
                continue
            tzid = getattr(prop, "params", {}).get("TZID")
            if not tzid:
                continue
            # icalendar reads an unknown TZID as a floating time: silently an hour or
            # ten off. A known one (IANA, Windows name, or a VTIMEZONE) is aware.
            for moment in _moments(prop):
                if isinstance(moment, datetime) and moment.tzinfo is None:
                    raise UnknownTimeZone(str(tzid), uid)


def _moments(prop: object) -> Iterator[object]:
    dts = getattr(prop, "dts", None)
    if dts is not None:  # EXDATE, RDATE: a list of values
        for item in dts:
            yield getattr(item, "dt", item)
        return
    yield getattr(prop, "dt", None)


def occurrences(
    calendar: icalendar.Calendar, zone: tzinfo, start: datetime, end: datetime
) -> list[Occurrence]:
    """Every occurrence overlapping [start, end), sorted, with instants per `instant`."""
    # Widened by two days: floating times and dates are compared by the library in
    # wall-clock time, which may be a day off UTC either way.
    wide_start, wide_end = start - timedelta(days=2), end + timedelta(days=2)
    try:
        events = calendar.walk("VEVENT")
        if sum(_most(e, wide_end - wide_start) for e in events) > MOST_OCCURRENCES:
            raise TooManyOccurrences()
        # The library steps through a rule from its DTSTART: an hourly rule begun in
        # 1900 is a million steps before the window. Bounded too, from the rule's start.
        spans = [max(wide_end - _begun(e, wide_start), timedelta(0)) for e in events]
        if sum(_most(e, span) for e, span in zip(events, spans, strict=True)) > MOST_STEPS:
            raise TooManySteps()
        expanded = recurring_ical_events.of(calendar).between(wide_start, wide_end)
        found = [_occurrence(event, zone) for event in expanded]
    except CalendarError:
        raise
    except Exception as error:  # the expansion raises whatever a rule meets
        raise BrokenEvent(type(error).__name__) from None
    found = [o for o in found if o.end > start and o.start < end]
    found.sort(key=lambda o: (o.start, o.end, o.uid))
    return found


# The length of one period of each RRULE frequency, for the bound below.
_PERIODS = {
    "SECONDLY": timedelta(seconds=1),
    "MINUTELY": timedelta(minutes=1),
    "HOURLY": timedelta(hours=1),
    "DAILY": timedelta(days=1),
    "WEEKLY": timedelta(weeks=1),
    "MONTHLY": timedelta(days=28),
    "YEARLY": timedelta(days=365),
}
_WEEKS = {"MONTHLY": 5, "YEARLY": 53}
_EXPANDING = ("BYSECOND", "BYMINUTE", "BYHOUR", "BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO")


def _most(event: icalendar.Event, window: timedelta) -> int:
    """An upper bound of the event's occurrences within a window of this length, read
    from its rules before expanding them: the library lists every occurrence, so a
    FREQ=SECONDLY rule must be refused before it is asked."""
    rdates = event.get("RDATE")
    total = 1 + sum(
        len(getattr(prop, "dts", ()) or ())
        for prop in (rdates if isinstance(rdates, list) else [rdates])
        if prop is not None
    )
    rules = event.get("RRULE")
    for rule in rules if isinstance(rules, list) else [rules]:
        if rule is None:
            continue
        frequency = str((rule.get("FREQ") or ["DAILY"])[0]).upper()
        interval = int((rule.get("INTERVAL") or [1])[0] or 1)
        period = _PERIODS.get(frequency, timedelta(seconds=1)) * max(interval, 1)
        each = 1
        for part in _EXPANDING:
            # A day of the week repeats in every week of the period it expands.
            weeks = _WEEKS.get(frequency, 1) if part == "BYDAY" else 1
            months = 12 if part == "BYMONTHDAY" and frequency == "YEARLY" else 1
            each *= max(len(rule.get(part) or ()), 1) * weeks * months
        total += (int(window / period) + 2) * each
    return total


def _begun(event: icalendar.Event, default: datetime) -> datetime:
    """The event's DTSTART as an aware instant (a date or a floating time read in UTC:
    a bound needs no better), or `default` when it has none."""
    begins = getattr(event.get("DTSTART"), "dt", None)
    if isinstance(begins, datetime):
        return begins if begins.tzinfo is not None else begins.replace(tzinfo=UTC)
    if begins is not None:
        return datetime(begins.year, begins.month, begins.day, tzinfo=UTC)
    return default


def _occurrence(event: icalendar.Event, zone: tzinfo) -> Occurrence:
    begins = _wall(event["DTSTART"].dt, zone)
    if "DTEND" in event:
        ends = _wall(event["DTEND"].dt, zone)
    elif "DURATION" in event:
        # A nominal duration: "P1D" is the same wall-clock time the next day.
        ends = begins + event["DURATION"].dt
    else:
        ends = begins
    return Occurrence(
        uid=str(event.get("UID", "")),
        start=instant(begins, "start"),
        end=max(instant(ends, "end"), instant(begins, "start")),
        attendees=tuple(_attendees(event)),
        summary=str(event.get("SUMMARY", "")).strip(),
    )


def _attendees(event: icalendar.Event) -> Iterable[str]:
    values = event.get("ATTENDEE")
    for value in values if isinstance(values, list) else [values]:
        if value is None:
            continue
        address = str(value).strip()
        if address.lower().startswith("mailto:"):
            address = address[len("mailto:") :]
        if address:
            yield address


def read(body: bytes, zone: tzinfo, start: datetime, end: datetime, limit: int) -> list[Occurrence]:
    """parse() then occurrences(): the feed's occurrences over [start, end)."""
    return occurrences(parse(body, limit), zone, start, end)


def export(
    name: str, shifts: Iterable[tuple[str, str, datetime, datetime]], stamp: datetime
) -> bytes:
    """A calendar of resolved shifts, each (uid, email or username, start, end), in
    UTC. Each shift names its person as SUMMARY and, for an address, as ATTENDEE, so
    reading the export back (as a schedule's feed) gives the same shifts."""
    calendar = icalendar.Calendar()
    calendar.add("PRODID", "-//controlplane//on-call schedule//EN")
    calendar.add("VERSION", "2.0")
    calendar.add("X-WR-CALNAME", name)
    for uid, who, begins, ends in shifts:
        event = icalendar.Event()
        event.add("UID", uid)
        event.add("DTSTAMP", stamp.astimezone(UTC))
        event.add("DTSTART", begins.astimezone(UTC))
        event.add("DTEND", ends.astimezone(UTC))
        event.add("SUMMARY", who)
        if "@" in who:
            event.add("ATTENDEE", f"mailto:{who}")
        calendar.add_component(event)
    return calendar.to_ical()
