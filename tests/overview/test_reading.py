"""The overview's pure parts: which burn rate is the fastest, how open alerts group."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlplane.overview import reading


@pytest.mark.parametrize(
    ("rates", "expected"),
    [
        ({}, (None, "")),
        ({"1h": 14.4}, (14.4, "1h")),
        ({"5m": 2.0, "1h": 14.4, "3d": 0.5}, (14.4, "1h")),
        # A tie names the shorter window: it moved first.
        ({"1h": 3.0, "5m": 3.0}, (3.0, "5m")),
        # No traffic (null), text, booleans and NaN are no rate; infinity is one.
        ({"5m": None, "1h": "fast", "6h": True, "1d": float("nan")}, (None, "")),
        ({"5m": float("inf"), "1h": 1e9}, (float("inf"), "5m")),
        # Windows the SLO maths does not know are left out.
        ({"7m": 99.0, "30m": 1}, (1.0, "30m")),
    ],
)
def test_the_fastest_burn(rates, expected):
    assert reading.fastest_burn(rates) == expected


def test_burn_text_names_its_window():
    assert reading.burn_text({"5m": 0.42, "1h": 1230.4}) == "1230\u00d7 (1h)"
    assert reading.burn_text({}) == "\u2014"


AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def item(pk: int, state: str, severity: str, minutes_ago: int) -> reading.AlertItem:
    return reading.AlertItem(
        id=pk, url=f"/alerts/{pk}/", rule_key=f"r{pk}", summary="",
        severity=reading.severity_mark(severity), state=state,
        started_at=AT - timedelta(minutes=minutes_ago), acknowledged_at=None, service="",
        silenced=False, runbook_url="", slo_name="", slo_url="", trace_id="", trace_url="",
    )  # fmt: skip


def test_open_alerts_group_by_state_then_severity_worst_first_oldest_first():
    counts = {
        ("firing", "info", False): 1,
        ("firing", "critical", False): 7,
        ("firing", "warning", True): 2,  # tests only: no group
        ("acknowledged", "warning", False): 1,
        ("firing", "page", False): 1,  # a severity of its own (Alertmanager): last
    }
    items = [
        item(1, "firing", "critical", 5),
        item(2, "firing", "critical", 50),
        item(3, "firing", "info", 1),
        item(4, "acknowledged", "warning", 9),
        item(5, "firing", "page", 3),
    ]
    section = reading.alerts_section(counts, items, "acme", several=False)
    assert [
        (g.severity.word, g.count, [a.id for a in g.items], g.more) for g in section.firing
    ] == [
        ("critical", 7, [2, 1], 5),
        ("info", 1, [3], 0),
        ("page", 1, [5], 0),
    ]
    assert [(g.severity.word, [a.id for a in g.items]) for g in section.acknowledged] == [
        ("warning", [4])
    ]
    assert (section.firing_count, section.acknowledged_count, section.tests) == (9, 1, 2)
    assert section.firing[0].all_url == "/alerts/?state=firing&severity=critical"


@pytest.mark.parametrize(
    ("value", "word", "symbol"),
    [("critical", "critical", "\u2716"), ("warning", "warning", "\u25b2"),
     ("info", "info", "\u25cb"), ("page", "page", "?"), ("", "unknown", "?")],
)  # fmt: skip
def test_every_severity_reads_as_a_word_and_a_symbol(value, word, symbol):
    mark = reading.severity_mark(value)
    assert (mark.word, mark.symbol) == (word, symbol)


def test_alert_links_name_the_organisation_when_the_reader_reads_several():
    counts = {("firing", "critical", False): 7}
    [one] = reading.alerts_section(counts, [], "acme", several=False).firing
    assert one.all_url == "/alerts/?state=firing&severity=critical"
    section = reading.alerts_section(counts, [], "acme", several=True)
    assert section.firing[0].all_url == "/alerts/?state=firing&severity=critical&organization=acme"
    assert section.all_url == "/alerts/?organization=acme"


def schedule(name: str, on_call: tuple[str, ...], gap: datetime | None = None):
    return reading.ScheduleItem(
        name=name, url=f"/oncall/{name}/", on_call=on_call, next_name="", next_start=None,
        gap=gap,
    )  # fmt: skip


def test_schedules_with_a_gap_come_first_and_are_all_counted():
    standings = [schedule(f"s{n}", ("alice",)) for n in range(1, 8)]
    standings += [schedule("s8", ()), schedule("s9", ("bob",), gap=AT)]
    section = reading.oncall_section(9, standings, first=3)
    assert [item.name for item in section.items] == ["s8", "s9", "s1"]
    assert (section.count, section.uncovered) == (9, 2)
    # Listed or not, every gap is counted.
    assert reading.oncall_section(9, standings, first=1).uncovered == 2
