"""ICS text for the tests, written out as feeds are: CRLF lines, one property a line."""

from __future__ import annotations


def event(uid: str, *lines: str) -> str:
    return "\r\n".join(
        ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z", *lines, "END:VEVENT"]
    )


def calendar(*events: str, header: tuple[str, ...] = ()) -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//tests//oncall//EN", *header, *events]
    return ("\r\n".join([*lines, "END:VCALENDAR"]) + "\r\n").encode()


def rotation(
    zone: str,
    people: list[str],
    first_day: str,
    handover: str,
    days: int,
    frequency: str = "DAILY",
) -> bytes:
    """`people` taking turns of `days` days (a whole number of weeks for WEEKLY), the
    turn changing hands at `handover` (HHMMSS) wall-clock time in `zone`; first_day is
    YYYYMMDD for the first person."""
    from datetime import date, timedelta

    start = date(int(first_day[:4]), int(first_day[4:6]), int(first_day[6:]))
    step = days if frequency == "DAILY" else days // 7
    period = len(people) * step
    events = []
    for index, person in enumerate(people):
        begins = start + timedelta(days=index * days)
        ends = begins + timedelta(days=days)
        events.append(
            event(
                f"turn-{index}",
                f"DTSTART;TZID={zone}:{begins:%Y%m%d}T{handover}",
                f"DTEND;TZID={zone}:{ends:%Y%m%d}T{handover}",
                f"RRULE:FREQ={frequency};INTERVAL={period}",
                f"SUMMARY:{person}",
            )
        )
    return calendar(*events)
