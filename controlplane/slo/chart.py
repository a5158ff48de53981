"""The budget chart of an SLO's page: snapshots in, SVG path data and axis labels out.

Pure (no model, no query, no clock): the page passes the (time, budget remaining)
points of its snapshots and the window's bounds, and draws what comes back in a
`viewBox`, so the chart scales to any width without script.

- Points outside [start, end] are dropped; a point without a budget (no data, not
  evaluated) breaks the line, so a gap reads as a gap, never as a straight guess.
- The y axis runs from 100 % down to 0 %, and further down to the most overspent point
  (budget remaining is negative once the errors exceed the budget), no lower than
  `FLOOR`: points below it sit on the bottom edge and `clipped` says so.
- The ideal burn-down line spends the budget evenly: 1 at `start`, 0 at `end`.
- At most four points per pixel column are kept (first, lowest, highest, last: M4
  downsampling), so a year of minute snapshots stays a light page and still shows
  every dip.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

# The viewBox, and the plot's margins inside it: room for the axis labels, also at the
# larger font a phone gets (a label centred on the last x tick must not be cut off).
WIDTH = 640
HEIGHT = 300
LEFT = 66.0
RIGHT = WIDTH - 34.0
TOP = 14.0
BOTTOM = HEIGHT - 34.0

# The lowest budget remaining the y axis reaches: overspent by a whole budget. A budget
# can fall to 1 - 1/B (-999 for 99.9 %); an axis that long would flatten everything else.
FLOOR = -1.0
# The most x labels: more would collide on a phone.
MOST_X_TICKS = 6
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

Point = tuple[datetime, float | None]
XY = tuple[float, float]


@dataclass(frozen=True)
class Tick:
    """A label on an axis at `at` (viewBox units along that axis); `minor` ticks are
    the ones a narrow screen leaves out."""

    at: float
    label: str
    minor: bool = False


@dataclass(frozen=True)
class Chart:
    segments: tuple[tuple[XY, ...], ...]
    line: str  # the budget remaining, one subpath per segment
    ideal: str  # the ideal burn-down line
    zero: float  # y of the 0 % line
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    clipped: bool  # some point lay below FLOOR and is drawn on the bottom edge
    last: XY | None  # the latest point drawn, marked with a dot
    width: int = WIDTH
    height: int = HEIGHT
    left: float = LEFT
    right: float = RIGHT
    top: float = TOP
    bottom: float = BOTTOM

    @property
    def empty(self) -> bool:
        return not self.segments

    @property
    def view_box(self) -> str:
        return f"0 0 {self.width} {self.height}"

    @property
    def y_label_x(self) -> float:
        """Where the y labels end (they are right-aligned beside the plot)."""
        return self.left - 8

    @property
    def x_label_y(self) -> float:
        """The baseline of the x labels, under the plot."""
        return self.bottom + 22


def budget_chart(
    points: Iterable[Point], start: datetime, end: datetime, tz: tzinfo = UTC
) -> Chart:
    """The chart of `points` over [start, end], x labels in `tz` (local midnights).

    `start` and `end` are aware datetimes; `end` must come after `start`.
    """
    if end <= start:
        raise ValueError(f"the window must end after it starts: {start} .. {end}")
    # In UTC: Python subtracts two datetimes of one zone as wall-clock times, which would
    # give a month losing an hour to DST 744 h instead of 743.
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    inside = sorted(
        ((at.astimezone(UTC), _budget(value)) for at, value in points if start <= at <= end),
        key=lambda point: point[0],
    )
    values = [value for _, value in inside if value is not None]
    lower = _lower_bound(min(values, default=0.0))
    span = (end - start).total_seconds()

    def x(at: datetime) -> float:
        return LEFT + (at - start).total_seconds() / span * (RIGHT - LEFT)

    def y(value: float) -> float:
        return TOP + (1.0 - value) / (1.0 - lower) * (BOTTOM - TOP)

    clipped = any(value < lower for value in values)
    runs: list[list[XY]] = []
    current: list[XY] = []
    for at, value in inside:
        if value is None:
            if current:
                runs.append(current)
            current = []
            continue
        current.append((x(at), y(min(1.0, max(lower, value)))))
    if current:
        runs.append(current)
    segments = tuple(tuple(_thinned(run)) for run in runs)
    zero = y(0.0)
    return Chart(
        segments=segments,
        line=" ".join(_subpath(segment) for segment in segments),
        ideal=f"M{_n(x(start))},{_n(y(1.0))} L{_n(x(end))},{_n(zero)}",
        zero=round(zero, 1),
        x_ticks=tuple(
            Tick(round(x(at), 1), label, minor) for at, label, minor in _times(start, end, tz)
        ),
        y_ticks=tuple(Tick(round(y(value), 1), _percent(value)) for value in _levels(lower)),
        clipped=clipped,
        last=_rounded(segments[-1][-1]) if segments else None,
    )


def _budget(value: float | None) -> float | None:
    """NaN and the infinities are no measurement: a gap, like None."""
    if value is None or not math.isfinite(value):
        return None
    return value


def _step(lower: float) -> float:
    return 0.25 if lower >= -0.5 else 0.5


def _lower_bound(lowest: float) -> float:
    """The axis' bottom: 0, or the most overspent point rounded down to a label step."""
    if lowest >= 0:
        return 0.0
    lowest = max(FLOOR, lowest)
    step = _step(lowest)
    return max(FLOOR, math.floor(lowest / step) * step)


def _levels(lower: float) -> list[float]:
    step = _step(lower)
    count = round((1.0 - lower) / step)
    return [1.0 - i * step for i in range(count + 1)]


def _percent(value: float) -> str:
    shown = round(value * 100)
    return f"\u2212{-shown}%" if shown < 0 else f"{shown}%"


def _thinned(run: list[XY]) -> list[XY]:
    """First, lowest, highest and last point of each pixel column, in their order.

    On screen y grows downwards: the lowest budget is the largest y.
    """
    kept: list[XY] = []
    column: list[XY] = []
    for point in run:
        if column and int(point[0]) != int(column[0][0]):
            kept += _extremes(column)
            column = []
        column.append(point)
    kept += _extremes(column)
    return kept


def _extremes(column: list[XY]) -> list[XY]:
    if len(column) <= 4:
        return column
    wanted = {0, len(column) - 1}
    wanted.add(min(range(len(column)), key=lambda i: column[i][1]))
    wanted.add(max(range(len(column)), key=lambda i: column[i][1]))
    return [column[i] for i in sorted(wanted)]


def _rounded(point: XY) -> XY:
    return round(point[0], 1), round(point[1], 1)


def _n(value: float) -> str:
    return f"{value:.1f}"


def _subpath(segment: tuple[XY, ...]) -> str:
    (x0, y0), *rest = segment
    if not rest:
        # A lone measurement between gaps: a zero-length line, which a round cap draws
        # as a dot.
        return f"M{_n(x0)},{_n(y0)} h0"
    return f"M{_n(x0)},{_n(y0)} " + " ".join(f"L{_n(x)},{_n(y)}" for x, y in rest)


def _times(start: datetime, end: datetime, tz: tzinfo) -> list[tuple[datetime, str, bool]]:
    """Labelled times: local midnights every 1, 2, 7, 14 or 28 days (the smallest step
    giving at most MOST_X_TICKS labels; longer for longer windows), or for a window
    under two days, five evenly spaced times of day."""
    span = end - start
    if span < timedelta(days=2):
        found = [start + span * i / 4 for i in range(5)]
        labels = [f"{at.astimezone(tz):%H:%M}" for at in found]
    else:
        step = next(
            (days for days in (1, 2, 7, 14, 28) if span / timedelta(days=days) < MOST_X_TICKS),
            math.ceil(span / timedelta(days=MOST_X_TICKS - 1)),
        )
        day = start.astimezone(tz).date()
        if _midnight(day, tz) < start:
            day += timedelta(days=1)
        found = []
        while _midnight(day, tz) <= end:
            found.append(_midnight(day, tz))
            day += timedelta(days=step)
        labels = [f"{at.astimezone(tz).day} {MONTHS[at.astimezone(tz).month - 1]}" for at in found]
    many = len(found) > 3
    return [
        (at, label, many and i % 2 == 1)
        for i, (at, label) in enumerate(zip(found, labels, strict=True))
    ]


def _midnight(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)
