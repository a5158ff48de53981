"""Who is on call: naming, overrides, gaps as tables, and a property test over 24 zones
comparing who_is_on_call over expanded feeds with a direct computation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controlplane.oncall import calendars, rota
from controlplane.oncall.calendars import Occurrence
from controlplane.oncall.rota import Shift, Unknown
from tests.oncall.ics import rotation

ALICE, BOB, CAROL = 1, 2, 3
NAMES = rota.directory(
    [(ALICE, "alice", "alice@example.com"), (BOB, "bob", "bob@example.com"), (CAROL, "carol", "")]
)


def at(hour: float) -> datetime:
    """Hours after a fixed midnight, as an instant."""
    return datetime(2026, 6, 1, tzinfo=UTC) + timedelta(hours=hour)


def occurrence(start: float, end: float, *attendees: str, summary: str = "", uid: str = "e"):
    return Occurrence(uid, at(start), at(end), attendees, summary)


def shift(responder: int, start: float, end: float, uid: str = "e", override: bool = False):
    return Shift(responder, at(start), at(end), uid, override)


def test_a_username_wins_over_someone_elses_email_of_the_same_spelling():
    names = rota.directory([(1, "ops@example.com", "x@example.com"), (2, "y", "ops@example.com")])

    assert names["ops@example.com"] == 1


@pytest.mark.parametrize(
    ("given", "shifts", "unknown"),
    [
        ([occurrence(0, 8, summary="alice")], [shift(ALICE, 0, 8)], []),
        ([occurrence(0, 8, summary="ALICE")], [shift(ALICE, 0, 8)], []),
        ([occurrence(0, 8, summary="bob@example.com")], [shift(BOB, 0, 8)], []),
        # Attendees first: the summary is then a title, not a name.
        (
            [occurrence(0, 8, "Alice@Example.com", "bob@example.com", summary="carol")],
            [shift(ALICE, 0, 8), shift(BOB, 0, 8)],
            [],
        ),
        (
            [occurrence(0, 8, "alice@example.com", "zed@example.com")],
            [shift(ALICE, 0, 8)],
            [Unknown("zed@example.com", "e", at(0))],
        ),
        # A weekly typo is reported once per event and name, with its first occurrence.
        (
            [occurrence(0, 8, summary="alcie"), occurrence(168, 176, summary="alcie")],
            [],
            [Unknown("alcie", "e", at(0))],
        ),
        ([occurrence(0, 8, uid="blank")], [], [Unknown("", "blank", at(0))]),
        ([occurrence(8, 8, summary="alice")], [], []),
    ],
)
def test_assign_names_responders_and_reports_unknown_names(given, shifts, unknown):
    assert rota.assign(given, NAMES) == (shifts, unknown)


@pytest.mark.parametrize(
    ("main", "overrides", "expected"),
    [
        ([shift(ALICE, 0, 24)], [], [shift(ALICE, 0, 24)]),
        (
            [shift(ALICE, 0, 24)],
            [shift(BOB, 8, 12, "o", True)],
            [shift(ALICE, 0, 8), shift(BOB, 8, 12, "o", True), shift(ALICE, 12, 24)],
        ),
        # Overlapping overrides cut once; one covering the whole shift leaves nothing.
        (
            [shift(ALICE, 0, 24), shift(CAROL, 24, 48)],
            [shift(BOB, 20, 30, "o", True), shift(BOB, 28, 36, "p", True)],
            [
                shift(ALICE, 0, 20),
                shift(BOB, 20, 30, "o", True),
                shift(BOB, 28, 36, "p", True),
                shift(CAROL, 36, 48),
            ],
        ),
        ([shift(ALICE, 4, 6)], [shift(BOB, 0, 24, "o", True)], [shift(BOB, 0, 24, "o", True)]),
    ],
)
def test_overrides_win_while_they_last(main, overrides, expected):
    assert rota.overlay(main, overrides) == expected


SHIFTS = [shift(ALICE, 0, 8), shift(BOB, 7, 16), shift(CAROL, 20, 30)]


@pytest.mark.parametrize(
    ("hour", "expected"),
    [
        (-1, []),
        (0, [ALICE]),
        (7.5, [ALICE, BOB]),
        (8, [BOB]),  # a shift's end is not in it
        (16, []),
        (25, [CAROL]),
    ],
)
def test_who_is_on_call(hour, expected):
    assert rota.who_is_on_call(SHIFTS, at(hour)) == expected


def test_gaps_and_the_first_one_within_24_hours():
    assert rota.gaps(SHIFTS, at(-2), at(32)) == [
        (at(-2), at(0)),
        (at(16), at(20)),
        (at(30), at(32)),
    ]
    assert rota.first_gap(SHIFTS, at(1)) == at(16)
    assert rota.first_gap(SHIFTS, at(21)) == at(30)
    assert rota.first_gap([shift(ALICE, 0, 48)], at(1)) is None
    assert rota.first_gap([], at(1)) == at(1)
    assert rota.next_shift(SHIFTS, at(1)) == shift(BOB, 7, 16)
    assert rota.next_shift(SHIFTS, at(21)) is None


# --- the property test ----------------------------------------------------------------

ZONES = [
    "UTC",
    "Europe/Paris",
    "Europe/London",
    "Europe/Dublin",  # negative DST in tzdata
    "Europe/Helsinki",
    "Europe/Moscow",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "America/St_Johns",  # half-hour offset with DST
    "America/Santiago",  # changes at midnight
    "America/Havana",  # changes at midnight
    "America/Sao_Paulo",
    "Africa/Casablanca",  # leaves DST for Ramadan
    "Africa/Cairo",
    "Asia/Tehran",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Australia/Adelaide",
    "Australia/Lord_Howe",  # moves by half an hour
    "Pacific/Auckland",
    "Pacific/Chatham",  # +12:45 / +13:45
]
FIRST_DAY = date(2026, 1, 5)
PEOPLE = ["p0", "p1", "p2", "p3"]


def edge(wall: datetime, zone: ZoneInfo, which: str) -> datetime:
    """The DST rules computed directly, without folds: every UTC instant whose local
    time is `wall`; a start takes the first, an end the last; a skipped time is read
    with the offset of twelve hours earlier."""
    naive = wall.replace(tzinfo=None)
    offsets = {(naive + timedelta(hours=h)).replace(tzinfo=zone).utcoffset() for h in (-12, 12)}
    found = sorted(
        (naive - offset).replace(tzinfo=UTC)
        for offset in offsets
        if (naive - offset).replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None) == naive
    )
    if not found:
        before = (naive - timedelta(hours=12)).replace(tzinfo=zone).utcoffset()
        return (naive - before).replace(tzinfo=UTC)
    return found[0] if which == "start" else found[-1]


def expected_on_call(
    moment: datetime, zone: ZoneInfo, people: int, days: int, handover: tuple[int, int]
) -> set[str]:
    """Turn j runs from FIRST_DAY + j*days at the handover time to the next turn's start
    and belongs to person j mod people."""
    local_day = moment.astimezone(zone).date()
    around = (local_day - FIRST_DAY).days // days
    on = set()
    for turn in range(around - 2, around + 3):
        if turn < 0:
            continue
        begins = datetime.combine(FIRST_DAY + timedelta(days=turn * days), datetime.min.time())
        ends = begins + timedelta(days=days)
        begins = begins.replace(hour=handover[0], minute=handover[1], tzinfo=zone)
        ends = ends.replace(hour=handover[0], minute=handover[1], tzinfo=zone)
        if edge(begins, zone, "start") <= moment < edge(ends, zone, "end"):
            on.add(PEOPLE[turn % people])
    return on


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    zone=st.sampled_from(ZONES),
    people=st.integers(1, 4),
    turn=st.sampled_from([(1, "DAILY"), (2, "DAILY"), (7, "WEEKLY"), (14, "WEEKLY")]),
    handover=st.tuples(st.integers(0, 23), st.sampled_from([0, 15, 30, 45])),
    moment=st.one_of(
        # Anywhere in the year, or within three hours of one of the zone's changes.
        st.datetimes(datetime(2026, 1, 6), datetime(2026, 12, 31)),
        st.tuples(st.integers(0, 30), st.integers(-180, 180)),
    ),
)
def test_who_is_on_call_matches_a_direct_computation(zone, people, turn, handover, moment):
    tz = ZoneInfo(zone)
    days, frequency = turn
    if isinstance(moment, tuple):
        changes = transitions(zone)
        if not changes:
            return
        index, minutes = moment
        moment = changes[index % len(changes)] + timedelta(minutes=minutes)
    else:
        moment = moment.replace(tzinfo=UTC)
    body = rotation(
        zone,
        PEOPLE[:people],
        f"{FIRST_DAY:%Y%m%d}",
        f"{handover[0]:02}{handover[1]:02}00",
        days,
        frequency,
    )
    names = rota.directory([(i, name, "") for i, name in enumerate(PEOPLE)])
    found = calendars.read(
        body, tz, moment - timedelta(hours=1), moment + timedelta(hours=1), 10**6
    )
    shifts, unknown = rota.assign(found, names)

    on_call = {PEOPLE[i] for i in rota.who_is_on_call(shifts, moment)}

    assert unknown == []
    assert on_call == expected_on_call(moment, tz, people, days, handover)
    # A rotation handing over at the same wall time never leaves anybody out.
    assert on_call


_TRANSITIONS: dict[str, list[datetime]] = {}


def transitions(zone: str) -> list[datetime]:
    """The zone's offset changes in 2026, to the minute."""
    if zone not in _TRANSITIONS:
        tz = ZoneInfo(zone)
        found = []
        moment = datetime(2026, 1, 6, tzinfo=UTC)
        step = timedelta(hours=1)
        while moment < datetime(2026, 12, 31, tzinfo=UTC):
            if (moment + step).astimezone(tz).utcoffset() != moment.astimezone(tz).utcoffset():
                low, high = moment, moment + step
                while high - low > timedelta(minutes=1):
                    middle = low + (high - low) / 2
                    if middle.astimezone(tz).utcoffset() == low.astimezone(tz).utcoffset():
                        low = middle
                    else:
                        high = middle
                found.append(high.replace(second=0, microsecond=0))
            moment += step
        _TRANSITIONS[zone] = found
    return _TRANSITIONS[zone]
