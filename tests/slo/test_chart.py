"""The budget chart's geometry (controlplane/slo/chart.py): pure, so tables of cases."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from controlplane.slo import chart
from controlplane.slo.chart import BOTTOM, LEFT, RIGHT, TOP, budget_chart

START = datetime(2026, 3, 1, tzinfo=UTC)
END = START + timedelta(days=30)
DAY = timedelta(days=1)


def at(days: float) -> datetime:
    return START + timedelta(days=days)


def x_of(days: float) -> float:
    return LEFT + days / 30 * (RIGHT - LEFT)


def y_of(value: float, lower: float = 0.0) -> float:
    return TOP + (1 - value) / (1 - lower) * (BOTTOM - TOP)


def numbers(path: str) -> list[tuple[float, float]]:
    return [(float(a), float(b)) for a, b in re.findall(r"(-?[\d.]+),(-?[\d.]+)", path)]


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        # (days into the window, budget) -> [(days, budget) of each drawn segment]
        pytest.param([(1, 1.0), (2, 0.9), (3, 0.8)], [[(1, 1.0), (2, 0.9), (3, 0.8)]], id="plain"),
        pytest.param(
            [(-2, 1.0), (-0.001, 1.0), (0, 0.95), (30, 0.5), (30.001, 0.4), (45, 0.1)],
            [[(0, 0.95), (30, 0.5)]],
            id="outside the window dropped, the bounds kept",
        ),
        pytest.param(
            [(1, 0.9), (2, None), (3, 0.8), (4, 0.7)],
            [[(1, 0.9)], [(3, 0.8), (4, 0.7)]],
            id="no data breaks the line",
        ),
        pytest.param(
            [(1, 0.9), (2, math.nan), (3, math.inf), (4, 0.7)],
            [[(1, 0.9)], [(4, 0.7)]],
            id="NaN and Inf are gaps too",
        ),
        pytest.param([], [], id="nothing"),
        pytest.param([(1, None), (2, None)], [], id="only gaps"),
        pytest.param(
            [(3, 0.8), (1, 1.0), (2, 0.9)], [[(1, 1.0), (2, 0.9), (3, 0.8)]], id="sorted by time"
        ),
    ],
)
def test_segments(points, expected):
    drawn = budget_chart([(at(d), v) for d, v in points], START, END)

    assert [[(round(px, 6), round(py, 6)) for px, py in segment] for segment in drawn.segments] == [
        [(round(x_of(d), 6), round(y_of(v), 6)) for d, v in segment] for segment in expected
    ]
    assert drawn.line.count("M") == len(expected)
    assert drawn.empty == (not expected)
    if expected:
        last_x, last_y = drawn.segments[-1][-1]
        assert drawn.last == (round(last_x, 1), round(last_y, 1))
    else:
        assert drawn.last is None


def test_a_lone_point_between_gaps_is_drawn_as_a_dot():
    drawn = budget_chart([(at(1), None), (at(2), 0.5), (at(3), None)], START, END)

    assert drawn.line == f"M{x_of(2):.1f},{y_of(0.5):.1f} h0"


@pytest.mark.parametrize(
    ("lowest", "lower", "labels", "clipped"),
    [
        (0.2, 0.0, ["100%", "75%", "50%", "25%", "0%"], False),
        (0.0, 0.0, ["100%", "75%", "50%", "25%", "0%"], False),
        (-0.1, -0.25, ["100%", "75%", "50%", "25%", "0%", "\u221225%"], False),
        (-0.5, -0.5, ["100%", "75%", "50%", "25%", "0%", "\u221225%", "\u221250%"], False),
        (-0.6, -1.0, ["100%", "50%", "0%", "\u221250%", "\u2212100%"], False),
        (-1.0, -1.0, ["100%", "50%", "0%", "\u221250%", "\u2212100%"], False),
        (-999.0, -1.0, ["100%", "50%", "0%", "\u221250%", "\u2212100%"], True),
    ],
)
def test_an_overspent_budget_is_drawn_below_the_zero_line(lowest, lower, labels, clipped):
    drawn = budget_chart([(at(1), 1.0), (at(10), lowest)], START, END)

    assert [tick.label for tick in drawn.y_ticks] == labels
    assert drawn.zero == pytest.approx(y_of(0.0, lower), abs=0.05)
    (_, y_start), (_, y_low) = drawn.segments[0]
    assert y_start == pytest.approx(TOP)
    assert y_low == pytest.approx(y_of(max(lowest, lower), lower))
    if lowest < 0:
        assert y_low > drawn.zero  # under the 0 line (y grows downwards)
    assert y_low <= BOTTOM
    assert drawn.clipped is clipped
    # Each label sits at its value's height.
    assert drawn.y_ticks[0].at == pytest.approx(TOP)
    assert drawn.y_ticks[-1].at == pytest.approx(BOTTOM)


def test_the_ideal_line_spends_the_budget_evenly_over_the_window():
    drawn = budget_chart([], START, END)

    assert numbers(drawn.ideal) == [(LEFT, TOP), (RIGHT, BOTTOM)]
    assert drawn.zero == BOTTOM
    assert drawn.empty
    assert drawn.line == ""


def test_the_ideal_line_still_ends_at_zero_when_the_axis_goes_below_it():
    drawn = budget_chart([(at(5), -0.5)], START, END)

    (x0, y0), (x1, y1) = numbers(drawn.ideal)
    assert (x0, y0) == (LEFT, TOP)
    assert x1 == RIGHT
    assert y1 == pytest.approx(drawn.zero, abs=0.05)
    assert y1 < BOTTOM


def test_a_year_of_minute_snapshots_is_thinned_but_keeps_every_dip():
    # One point a minute for 30 days, flat at 0.8 but for one minute at 0.1.
    points = [(START + timedelta(minutes=m), 0.8) for m in range(30 * 24 * 60)]
    dip = 12345
    points[dip] = (points[dip][0], 0.1)

    drawn = budget_chart(points, START, END)

    (segment,) = drawn.segments
    columns: dict[int, int] = {}
    for px, _ in segment:
        columns[int(px)] = columns.get(int(px), 0) + 1
    assert len(segment) <= 4 * (int(RIGHT - LEFT) + 1)
    assert max(columns.values()) <= 4
    assert min(py for _, py in segment) == pytest.approx(y_of(0.8))
    assert max(py for _, py in segment) == pytest.approx(y_of(0.1))  # the dip survives
    assert segment[0][0] == pytest.approx(LEFT)


@pytest.mark.parametrize(
    ("start", "end", "zone", "labels", "first_at"),
    [
        pytest.param(
            datetime(2026, 3, 1, tzinfo=ZoneInfo("Europe/Paris")),
            datetime(2026, 4, 1, tzinfo=ZoneInfo("Europe/Paris")),
            "Europe/Paris",
            ["1 Mar", "8 Mar", "15 Mar", "22 Mar", "29 Mar"],
            LEFT,
            id="calendar month across DST, from its first midnight",
        ),
        pytest.param(
            datetime(2026, 3, 3, 14, 30, tzinfo=UTC),
            datetime(2026, 3, 10, 14, 30, tzinfo=UTC),
            "UTC",
            ["4 Mar", "6 Mar", "8 Mar", "10 Mar"],
            LEFT + (9.5 / 24) / 7 * (RIGHT - LEFT),
            id="rolling 7 days: the next midnights, every other day",
        ),
        pytest.param(
            datetime(2026, 1, 1, tzinfo=UTC),
            datetime(2026, 4, 1, tzinfo=UTC),
            "UTC",
            ["1 Jan", "29 Jan", "26 Feb", "26 Mar"],
            LEFT,
            id="quarter: every four weeks",
        ),
        pytest.param(
            datetime(2026, 3, 3, 6, 0, tzinfo=UTC),
            datetime(2026, 3, 4, 6, 0, tzinfo=UTC),
            "UTC",
            ["06:00", "12:00", "18:00", "00:00", "06:00"],
            LEFT,
            id="under two days: times of day",
        ),
    ],
)
def test_x_labels(start, end, zone, labels, first_at):
    drawn = budget_chart([], start, end, ZoneInfo(zone))

    assert [tick.label for tick in drawn.x_ticks] == labels
    assert drawn.x_ticks[0].at == pytest.approx(first_at, abs=0.05)
    assert all(LEFT <= tick.at <= RIGHT for tick in drawn.x_ticks)
    assert len(drawn.x_ticks) <= chart.MOST_X_TICKS
    # A phone drops every other label; the first stays.
    assert not drawn.x_ticks[0].minor
    assert [t.minor for t in drawn.x_ticks][1::2] == [len(labels) > 3] * (len(labels) // 2)


def test_a_dst_month_puts_its_ticks_at_local_midnight():
    paris = ZoneInfo("Europe/Paris")
    start = datetime(2026, 3, 1, tzinfo=paris)
    end = datetime(2026, 4, 1, tzinfo=paris)  # 743 hours later

    drawn = budget_chart([], start, end, paris)

    # 29 March 00:00 is still CET (the clocks go forward at 02:00): 672 h after the start,
    # in a month of 743 h.
    last = drawn.x_ticks[-1]
    hours = (datetime(2026, 3, 29, tzinfo=paris) - start) / timedelta(hours=1)
    assert last.at == pytest.approx(LEFT + hours / 743 * (RIGHT - LEFT), abs=0.05)


def test_a_window_that_does_not_end_after_it_starts_is_refused():
    with pytest.raises(ValueError, match="must end after it starts"):
        budget_chart([], END, START)
