"""Who is on call: occurrences named to people, overrides laid over, gaps found.

Pure functions over plain values: the synchroniser feeds them the members of the
schedule's organisation and a calendar's occurrences, pages and the API feed them the
stored shifts. Responders are identified by their user id here.

How an event names its responder (docs/oncall.md): every `ATTENDEE` address of the
event, or, when it has none, its `SUMMARY`; each name is matched, ignoring case,
against the organisation's members' usernames, then their email addresses. A name that
matches nobody is reported (`Unknown`), never silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from controlplane.oncall.calendars import Occurrence

# How far ahead a schedule with nobody on call is flagged.
GAP_LOOKAHEAD = timedelta(hours=24)


@dataclass(frozen=True)
class Shift:
    responder: int
    start: datetime
    end: datetime
    uid: str
    override: bool = False


@dataclass(frozen=True)
class Unknown:
    """A name an event gives that is no member of the organisation."""

    name: str
    uid: str
    start: datetime

    def __str__(self) -> str:
        return f"{self.name!r} (event {self.uid!r}, {self.start:%Y-%m-%d %H:%M} UTC)"


def directory(members: Iterable[tuple[int, str, str]]) -> dict[str, int]:
    """Names -> user id from (id, username, email) of each member. A username wins
    over someone else's email address of the same spelling."""
    listed = list(members)
    by_email = {email.lower(): user for user, _, email in listed if email}
    by_username = {username.lower(): user for user, username, _ in listed if username}
    return {**by_email, **by_username}


def assign(
    occurrences: Iterable[Occurrence], names: Mapping[str, int], override: bool = False
) -> tuple[list[Shift], list[Unknown]]:
    """One shift per (occurrence, person it names); the names nobody has, reported once
    per event and name (a weekly rotation naming a typo is one report, not 52)."""
    shifts: list[Shift] = []
    unknown: dict[tuple[str, str], Unknown] = {}
    for occurrence in occurrences:
        if occurrence.end <= occurrence.start:
            continue
        if not occurrence.names:
            key = ("", occurrence.uid)
            unknown.setdefault(key, Unknown("", occurrence.uid, occurrence.start))
        for name in occurrence.names:
            user = names.get(name.lower())
            if user is None:
                key = (name.lower(), occurrence.uid)
                unknown.setdefault(key, Unknown(name, occurrence.uid, occurrence.start))
                continue
            shifts.append(Shift(user, occurrence.start, occurrence.end, occurrence.uid, override))
    return _distinct(shifts), list(unknown.values())


def _distinct(shifts: Iterable[Shift]) -> list[Shift]:
    return sorted(set(shifts), key=_order)


def _order(shift: Shift) -> tuple:
    return (shift.start, shift.end, shift.responder, shift.uid, shift.override)


def overlay(main: Sequence[Shift], overrides: Sequence[Shift]) -> list[Shift]:
    """The main shifts with every override's time cut out of them, plus the overrides:
    while an override is on, its people are on call and the main calendar's are not
    (as Grafana OnCall's overrides do). Overrides naming nobody known cut nothing."""
    covered = _merged((s.start, s.end) for s in overrides)
    result: list[Shift] = list(overrides)
    for shift in main:
        for start, end in _subtract((shift.start, shift.end), covered):
            result.append(Shift(shift.responder, start, end, shift.uid, shift.override))
    return _distinct(result)


def _merged(intervals: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _subtract(
    interval: tuple[datetime, datetime], covered: Sequence[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    start, end = interval
    left: list[tuple[datetime, datetime]] = []
    for cut_start, cut_end in covered:
        if cut_end <= start or cut_start >= end:
            continue
        if cut_start > start:
            left.append((start, cut_start))
        start = max(start, cut_end)
        if start >= end:
            return left
    left.append((start, end))
    return left


def who_is_on_call(shifts: Iterable[Shift], at: datetime) -> list[int]:
    """The responders on call at `at` (a shift holds [start, end)), by shift start,
    each once. Two during a fall-back handover's repeated hour, as the DST rules say."""
    on = sorted((s for s in shifts if s.start <= at < s.end), key=_order)
    return list(dict.fromkeys(s.responder for s in on))


def next_shift(shifts: Iterable[Shift], at: datetime) -> Shift | None:
    """The first shift to start after `at` (the next handover), or None."""
    later = [s for s in shifts if s.start > at]
    return min(later, key=_order) if later else None


def gaps(
    shifts: Iterable[Shift], start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The stretches of [start, end) with nobody on call."""
    found: list[tuple[datetime, datetime]] = []
    cursor = start
    for shift_start, shift_end in _merged((s.start, s.end) for s in shifts):
        if shift_end <= cursor:
            continue
        if shift_start >= end:
            break
        if shift_start > cursor:
            found.append((cursor, shift_start))
        cursor = max(cursor, shift_end)
        if cursor >= end:
            return found
    if cursor < end:
        found.append((cursor, end))
    return found


def first_gap(
    shifts: Iterable[Shift], now: datetime, within: timedelta = GAP_LOOKAHEAD
) -> datetime | None:
    """When nobody will be on call, from now or within the next `within`; None if
    someone always is."""
    found = gaps(shifts, now, now + within)
    return found[0][0] if found else None
