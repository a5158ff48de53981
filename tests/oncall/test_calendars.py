"""Reading ICS feeds: DST rules as tables, recurrence and exceptions, the closed error set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from controlplane.oncall import calendars
from controlplane.oncall.calendars import instant
from tests.oncall.ics import calendar, event, rotation

LIMIT = 1024 * 1024
PARIS = ZoneInfo("Europe/Paris")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "wall", "edge", "expected"),
    [
        # 09:00 Paris is 07:00 UTC in summer, 08:00 in winter.
        ("Europe/Paris", (2026, 7, 1, 9, 0), "start", utc(2026, 7, 1, 7, 0)),
        ("Europe/Paris", (2026, 12, 1, 9, 0), "end", utc(2026, 12, 1, 8, 0)),
        # The repeated hour of 25 October: a start is its first occurrence, an end its last.
        ("Europe/Paris", (2026, 10, 25, 2, 30), "start", utc(2026, 10, 25, 0, 30)),
        ("Europe/Paris", (2026, 10, 25, 2, 30), "end", utc(2026, 10, 25, 1, 30)),
        # The skipped hour of 29 March: one instant for both edges, read at +01:00.
        ("Europe/Paris", (2026, 3, 29, 2, 30), "start", utc(2026, 3, 29, 1, 30)),
        ("Europe/Paris", (2026, 3, 29, 2, 30), "end", utc(2026, 3, 29, 1, 30)),
        ("America/New_York", (2026, 3, 8, 2, 30), "start", utc(2026, 3, 8, 7, 30)),
        ("America/New_York", (2026, 3, 8, 2, 30), "end", utc(2026, 3, 8, 7, 30)),
        ("America/New_York", (2026, 11, 1, 1, 30), "start", utc(2026, 11, 1, 5, 30)),
        ("America/New_York", (2026, 11, 1, 1, 30), "end", utc(2026, 11, 1, 6, 30)),
        # Southern hemisphere: Sydney falls back in April.
        ("Australia/Sydney", (2026, 4, 5, 2, 30), "start", utc(2026, 4, 4, 15, 30)),
        ("Australia/Sydney", (2026, 4, 5, 2, 30), "end", utc(2026, 4, 4, 16, 30)),
        # Lord Howe moves by half an hour.
        ("Australia/Lord_Howe", (2026, 4, 5, 1, 45), "start", utc(2026, 4, 4, 14, 45)),
        ("Australia/Lord_Howe", (2026, 4, 5, 1, 45), "end", utc(2026, 4, 4, 15, 15)),
        # Santiago skips midnight in September: an all-day shift starts at 01:00.
        ("America/Santiago", (2026, 9, 6, 0, 0), "start", utc(2026, 9, 6, 4, 0)),
        ("UTC", (2026, 10, 25, 2, 30), "end", utc(2026, 10, 25, 2, 30)),
    ],
)
def test_instant_follows_the_dst_rules(zone, wall, edge, expected):
    assert instant(datetime(*wall, tzinfo=ZoneInfo(zone)), edge) == expected


def shifts_of(body: bytes, start: datetime, end: datetime, zone=PARIS) -> list[tuple]:
    return [(o.uid, o.start, o.end, o.names) for o in calendars.read(body, zone, start, end, LIMIT)]


def test_a_weekly_rotation_keeps_its_wall_clock_time_across_both_changes():
    body = rotation("Europe/Paris", ["alice", "bob"], "20260316", "090000", 7, "WEEKLY")

    found = shifts_of(body, utc(2026, 3, 16), utc(2026, 4, 6))
    autumn = shifts_of(body, utc(2026, 10, 19), utc(2026, 11, 2))

    assert found == [
        ("turn-0", utc(2026, 3, 16, 8), utc(2026, 3, 23, 8), ("alice",)),
        ("turn-1", utc(2026, 3, 23, 8), utc(2026, 3, 30, 7), ("bob",)),
        ("turn-0", utc(2026, 3, 30, 7), utc(2026, 4, 6, 7), ("alice",)),
    ]
    assert [(start, end) for _, start, end, _ in autumn] == [
        (utc(2026, 10, 12, 7), utc(2026, 10, 19, 7)),
        (utc(2026, 10, 19, 7), utc(2026, 10, 26, 8)),
        (utc(2026, 10, 26, 8), utc(2026, 11, 2, 8)),
    ]


def test_a_daily_handover_in_the_repeated_hour_overlaps_rather_than_leaving_a_gap():
    body = rotation("Europe/Paris", ["alice", "bob"], "20261023", "023000", 1)

    found = shifts_of(body, utc(2026, 10, 24, 12), utc(2026, 10, 25, 12))

    assert found == [
        ("turn-1", utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 1, 30), ("bob",)),
        ("turn-0", utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30), ("alice",)),
    ]


def test_an_exdate_removes_one_occurrence():
    body = calendar(
        event(
            "daily",
            "DTSTART;TZID=Europe/Paris:20260601T090000",
            "DTEND;TZID=Europe/Paris:20260601T170000",
            "RRULE:FREQ=DAILY;COUNT=3",
            "EXDATE;TZID=Europe/Paris:20260602T090000",
            "SUMMARY:alice",
        )
    )

    found = shifts_of(body, utc(2026, 6, 1), utc(2026, 6, 5))

    assert [start for _, start, _, _ in found] == [utc(2026, 6, 1, 7), utc(2026, 6, 3, 7)]


def test_a_recurrence_id_moves_one_occurrence_and_names_its_own_responder():
    body = calendar(
        event(
            "daily",
            "DTSTART;TZID=Europe/Paris:20260601T090000",
            "DTEND;TZID=Europe/Paris:20260601T170000",
            "RRULE:FREQ=DAILY;COUNT=3",
            "SUMMARY:alice",
        ),
        event(
            "daily",
            "RECURRENCE-ID;TZID=Europe/Paris:20260602T090000",
            "DTSTART;TZID=Europe/Paris:20260602T120000",
            "DTEND;TZID=Europe/Paris:20260602T200000",
            "SUMMARY:bob",
        ),
    )

    found = shifts_of(body, utc(2026, 6, 1), utc(2026, 6, 5))

    assert found == [
        ("daily", utc(2026, 6, 1, 7), utc(2026, 6, 1, 15), ("alice",)),
        ("daily", utc(2026, 6, 2, 10), utc(2026, 6, 2, 18), ("bob",)),
        ("daily", utc(2026, 6, 3, 7), utc(2026, 6, 3, 15), ("alice",)),
    ]


def test_an_all_day_event_runs_midnight_to_midnight_in_the_schedules_zone():
    body = calendar(
        event("day", "DTSTART;VALUE=DATE:20260704", "DTEND;VALUE=DATE:20260706", "SUMMARY:carol")
    )

    found = shifts_of(body, utc(2026, 7, 1), utc(2026, 7, 10), ZoneInfo("America/New_York"))

    assert found == [("day", utc(2026, 7, 4, 4), utc(2026, 7, 6, 4), ("carol",))]


def test_floating_times_are_read_in_the_schedules_zone():
    body = calendar(event("f", "DTSTART:20261201T090000", "DURATION:PT8H", "SUMMARY:dave"))

    found = shifts_of(body, utc(2026, 12, 1), utc(2026, 12, 2), ZoneInfo("Asia/Tokyo"))

    assert found == [("f", utc(2026, 12, 1, 0), utc(2026, 12, 1, 8), ("dave",))]


def test_a_google_feed_with_x_wr_timezone_only_stays_on_local_time_across_the_change():
    # Google writes UTC times and names the calendar's zone in X-WR-TIMEZONE: the
    # rotation is at 09:00 New York, 14:00 UTC in winter and 13:00 UTC in summer.
    body = calendar(
        event(
            "g",
            "DTSTART:20260306T140000Z",
            "DTEND:20260307T140000Z",
            "RRULE:FREQ=DAILY;COUNT=4",
            "SUMMARY:erin",
        ),
        header=("X-WR-TIMEZONE:America/New_York",),
    )

    found = shifts_of(body, utc(2026, 3, 6), utc(2026, 3, 11), ZoneInfo("UTC"))

    assert [start for _, start, _, _ in found] == [
        utc(2026, 3, 6, 14),
        utc(2026, 3, 7, 14),
        utc(2026, 3, 8, 13),
        utc(2026, 3, 9, 13),
    ]


def test_attendees_name_the_responders_before_the_summary():
    body = calendar(
        event(
            "a",
            "DTSTART:20260601T000000Z",
            "DTEND:20260602T000000Z",
            "SUMMARY:Primary on call",
            "ATTENDEE;CN=Alice:mailto:Alice@Example.com",
            "ATTENDEE:MAILTO:bob@example.com",
        )
    )

    [(_, _, _, names)] = shifts_of(body, utc(2026, 6, 1), utc(2026, 6, 2))

    assert names == ("Alice@Example.com", "bob@example.com")


def test_an_event_named_in_a_vtimezone_of_the_calendar_is_read_in_it():
    zone = "\r\n".join(
        [
            "BEGIN:VTIMEZONE",
            "TZID:Team Time",
            "BEGIN:STANDARD",
            "DTSTART:16011028T030000",
            "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10",
            "TZOFFSETFROM:+0200",
            "TZOFFSETTO:+0100",
            "END:STANDARD",
            "BEGIN:DAYLIGHT",
            "DTSTART:16010325T020000",
            "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3",
            "TZOFFSETFROM:+0100",
            "TZOFFSETTO:+0200",
            "END:DAYLIGHT",
            "END:VTIMEZONE",
        ]
    )
    body = calendar(
        zone,
        event(
            "v",
            "DTSTART;TZID=Team Time:20260701T090000",
            "DTEND;TZID=Team Time:20260701T170000",
            "SUMMARY:alice",
        ),
    )

    assert shifts_of(body, utc(2026, 7, 1), utc(2026, 7, 2)) == [
        ("v", utc(2026, 7, 1, 7), utc(2026, 7, 1, 15), ("alice",))
    ]


ONE_EVENT = event("e", "DTSTART:20260601T000000Z", "DTEND:20260602T000000Z", "SUMMARY:a")


@pytest.mark.parametrize(
    ("body", "error", "says"),
    [
        (b"\x00\xff garbage \x89PNG", calendars.NotACalendar, "not an iCalendar file"),
        (b"", calendars.NotACalendar, "empty"),
        (b"<!DOCTYPE html><html><body>Sign in</body></html>", calendars.HtmlPage, "HTML page"),
        (b"\xef\xbb\xbf  <html>", calendars.HtmlPage, "HTML page"),
        (b"BEGIN:VCALENDAR\r\nthis is: not\r\n ical at all", calendars.NotACalendar, "parsed"),
        (b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", calendars.NoEvents, "no events"),
        (calendar(), calendars.NoEvents, "no events"),
        (b"BEGIN:VCALENDAR\r\n" + b"X" * LIMIT, calendars.TooLarge, "larger than 1 MiB"),
        (
            calendar(event("m", "DTSTART;TZID=Mars/Olympus_Mons:20260601T090000", "SUMMARY:a")),
            calendars.UnknownTimeZone,
            "'Mars/Olympus_Mons' (event 'm')",
        ),
        (
            calendar(
                event(
                    "x",
                    "DTSTART;TZID=Europe/Paris:20260601T090000",
                    "DTEND;TZID=Europe/Paris:20260601T090100",
                    "EXDATE;TZID=Atlantis:20260602T090000",
                    "RRULE:FREQ=DAILY",
                    "SUMMARY:a",
                )
            ),
            calendars.UnknownTimeZone,
            "'Atlantis'",
        ),
        (
            calendar(
                event(
                    "busy",
                    "DTSTART:20260601T000000Z",
                    "DTEND:20260601T000100Z",
                    "RRULE:FREQ=MINUTELY",
                    "SUMMARY:a",
                )
            ),
            calendars.TooManyOccurrences,
            "more than 5000",
        ),
        (calendar(event("nodate", "SUMMARY:a")), calendars.BrokenEvent, "cannot be read"),
        # Hourly since 1900: a million steps before the window, a few seconds of work.
        (
            calendar(
                event(
                    "old",
                    "DTSTART:19000101T000000Z",
                    "DTEND:19000101T003000Z",
                    "RRULE:FREQ=HOURLY",
                    "SUMMARY:a",
                )
            ),
            calendars.TooManySteps,
            "start the rotation from a recent date",
        ),
        # A yearly rule expanding by weekday and hour: thousands within any window.
        (
            calendar(
                event(
                    "yearly",
                    "DTSTART:20260101T000000Z",
                    "DTEND:20260101T000100Z",
                    "RRULE:FREQ=YEARLY;BYDAY=MO,TU,WE,TH,FR,SA,SU;BYHOUR=0,1,2,3,4,5,6,7,8,9,10,"
                    "11,12,13,14,15,16,17,18,19,20,21,22,23;BYMINUTE=0,5,10,15,20,25,30",
                    "SUMMARY:a",
                )
            ),
            calendars.TooManyOccurrences,
            "more than 5000",
        ),
        # A rule the library itself cannot read: named, not raised.
        (
            calendar(
                event(
                    "x",
                    "DTSTART:20260601T000000Z",
                    "DTEND:20260601T010000Z",
                    "RRULE:FREQ=DAILY;INTERVAL=x",
                    "SUMMARY:a",
                )
            ),
            calendars.BrokenEvent,
            "cannot be read",
        ),
    ],
)
def test_unfit_feeds_get_one_error_of_the_closed_set(body, error, says):
    with pytest.raises(error) as raised:
        calendars.read(body, PARIS, utc(2026, 6, 1), utc(2026, 7, 6), LIMIT)

    assert says in raised.value.message
    assert isinstance(raised.value, calendars.CalendarError)


def test_a_weekly_rota_begun_years_ago_is_read():
    body = rotation("UTC", ["alice", "bob"], "20100104", "090000", 7, "WEEKLY")

    found = calendars.read(body, PARIS, utc(2026, 6, 1), utc(2026, 6, 15), LIMIT)

    assert {o.names[0] for o in found} == {"alice", "bob"}


def test_a_feed_just_under_the_limit_is_read():
    body = calendar(ONE_EVENT)

    assert len(calendars.read(body, PARIS, utc(2026, 6, 1), utc(2026, 6, 2), len(body))) == 1


def test_an_export_reads_back_as_the_same_shifts():
    shifts = [
        ("s1", "alice@example.com", utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 1, 30)),
        ("s2", "bob", utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)),
    ]
    body = calendars.export("Primary", shifts, utc(2026, 10, 1))

    found = calendars.read(body, PARIS, utc(2026, 10, 20), utc(2026, 10, 30), LIMIT)

    assert [(o.uid, o.names[0], o.start, o.end) for o in found] == shifts


def test_the_window_keeps_occurrences_that_started_before_it():
    body = rotation("UTC", ["alice", "bob"], "20260105", "090000", 14, "WEEKLY")

    found = shifts_of(body, utc(2026, 2, 10), utc(2026, 2, 10) + timedelta(hours=1))

    assert found == [("turn-0", utc(2026, 2, 2, 9), utc(2026, 2, 16, 9), ("alice",))]
