"""Series for the real Prometheus fixture whose increase over every window is known
exactly, so that the SLO tests can hold an evaluation's SLI, budget remaining and burn
rates to 1e-9 of what the construction says. Pure: no I/O, no clock.

The construction. Events are counted minute by minute (`Events`): a counter's value at
a whole minute is the number of events before it, an integer. Series are sampled on a
`Grid`, every minute over the last days before the evaluation and every five minutes
before that (a month of data stays around 13,000 samples a series). The true increase
over [since, until] is value(until) - value(since).

Why Prometheus answers exactly that (Prometheus 2.x, promql/functions.go,
`extrapolatedRate`): `increase(c[W])` at t takes the samples in the *closed* range
[t - W, t], computes last - first (plus any resets) and multiplies it by
(sampled interval + gap to the range's start + gap to its end) / sampled interval,
each gap replaced by half the average spacing when it exceeds 1.1 times that spacing,
and the start gap cut to where the counter would have been zero when that is nearer.
With a sample at t - W and one at t both gaps are 0 and the factor is exactly 1, however
the rate varied in between; values are integers below 2**53, so last - first is exact,
and sums of them too. Hence the rule the tests keep: evaluate at a grid time, and let
every window start at one (`Grid.check`). Between samples the counter may be read as
rising linearly; nothing depends on it.

A counter that appears after a while (bad events, before the first error) is first
sampled at its value v > 0. Prometheus then extrapolates back to its zero point:
(last - v) * (sampled + d) / sampled with d = sampled * v / (last - v), which is `last`
to rounding, the true increase of a counter that was 0 before it appeared, provided d
is shorter than both the gap to the range's start and 1.1 times the average spacing
(`appearance_is_exact`). A series whose first sample is 0 is exact in every window.

Prometheus 3 opens the range at its start: the sample at t - W is no longer seen, and
the first step is extrapolated at the window's average rate, exact only for a counter
rising at one rate throughout. The SLO tests check which Prometheus they run against.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta

from tests.integration.prometheus import series_key

MINUTE = timedelta(minutes=1)
FIVE_MINUTES = timedelta(minutes=5)

Sample = tuple[datetime, float]


def _whole_minute(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at} has no time zone")
    if at.second or at.microsecond:
        raise ValueError(f"{at} is not a whole minute")
    return at.astimezone(UTC)


class Events:
    """Events counted minute by minute over [start, end): minute i is the minute that
    ends at start + (i + 1) minutes. Before `start` the counter does not exist (0)."""

    def __init__(self, start: datetime, end: datetime, per_minute: int = 0) -> None:
        self.start, self.end = _whole_minute(start), _whole_minute(end)
        if self.end <= self.start:
            raise ValueError(f"empty span {start} .. {end}")
        self.counts = [per_minute] * ((self.end - self.start) // MINUTE)
        self._values: list[int] | None = None

    def _index(self, at: datetime) -> int:
        index = (_whole_minute(at) - self.start) // MINUTE
        if not 0 <= index <= len(self.counts):
            raise ValueError(f"{at} is outside {self.start} .. {self.end}")
        return index

    def add(self, since: datetime, until: datetime, per_minute: int = 0, spread: int = 0) -> Events:
        """Add `per_minute` events in each minute of [since, until), and `spread` events
        shared as evenly as whole events allow (the earlier minutes take the remainder)."""
        first, last = self._index(since), self._index(until)
        minutes = last - first
        if minutes <= 0:
            raise ValueError(f"empty span {since} .. {until}")
        share, remainder = divmod(spread, minutes)
        for offset in range(minutes):
            self.counts[first + offset] += per_minute + share + (offset < remainder)
        self._values = None
        return self

    def minus(self, other: Events) -> Events:
        """These events less `other`'s, minute by minute (good = total - bad)."""
        if (other.start, other.end) != (self.start, self.end):
            raise ValueError("both must span the same minutes")
        left = Events(self.start, self.end)
        left.counts = [a - b for a, b in zip(self.counts, other.counts, strict=True)]
        if min(left.counts) < 0:
            raise ValueError("more events taken away than there were")
        return left

    def value(self, at: datetime) -> int:
        """The counter at `at` (a whole minute): the events before it; 0 before start."""
        if _whole_minute(at) <= self.start:
            return 0
        if self._values is None:
            self._values = [0, *itertools.accumulate(self.counts)]
        return self._values[self._index(min(at, self.end))]

    def increase(self, since: datetime, until: datetime) -> int:
        """The events in [since, until]: value(until) - value(since)."""
        if until < since:
            raise ValueError(f"{until} is before {since}")
        return self.value(until) - self.value(since)

    def samples(self, grid: Grid, appears: datetime | None = None) -> list[Sample]:
        """The counter at each grid time from `appears` (default: start) to end."""
        first = self.start if appears is None else _whole_minute(appears)
        return [(at, float(self.value(at))) for at in grid.times if first <= at <= self.end]


class Grid:
    """The times series are sampled at (aware UTC, whole minutes, ascending)."""

    def __init__(self, times: Iterable[datetime]) -> None:
        self.times = sorted({_whole_minute(at) for at in times})

    @classmethod
    def between(cls, first: datetime, last: datetime, fine_since: datetime | None = None) -> Grid:
        """Every five minutes from `first`, every minute from `fine_since` (default:
        `first`) to `last`, both ends included."""
        fine_since = first if fine_since is None else fine_since
        coarse = _steps(first, min(fine_since, last), FIVE_MINUTES)
        return cls([*coarse, *_steps(max(fine_since, first), last, MINUTE)])

    def __contains__(self, at: datetime) -> bool:
        index = bisect.bisect_left(self.times, at)
        return index < len(self.times) and self.times[index] == at

    def check(self, *times: datetime) -> None:
        """Refuse a window start or an evaluation time that is not a sample time: the
        increase there would be extrapolated, not exact."""
        missing = [at.isoformat() for at in times if at not in self]
        if missing:
            raise ValueError(f"not sample times, increase() would extrapolate: {missing}")

    def spacing(self, since: datetime, until: datetime, appears: datetime) -> float:
        """Average seconds between the samples Prometheus sees in [since, until] of a
        series that appears at `appears`."""
        seen = [at for at in self.times if max(since, appears) <= at <= until]
        if len(seen) < 2:
            raise ValueError("fewer than two samples in the range")
        return (seen[-1] - seen[0]).total_seconds() / (len(seen) - 1)


def _steps(first: datetime, last: datetime, step: timedelta) -> list[datetime]:
    count = (last - first) // step
    return [first + i * step for i in range(count + 1)]


def appearance_is_exact(
    events: Events, grid: Grid, appears: datetime, since: datetime, until: datetime
) -> bool:
    """Whether increase() over [since, until] of a counter first sampled at `appears`
    (at a value above 0, since < appears) gives value(until) exactly: its zero point
    lies nearer than the range's start and than 1.1 average spacings (module doc)."""
    first, last = events.value(appears), events.value(until)
    if not 0 < first < last or not since < appears:
        return first == 0 or since >= appears
    sampled = (until - appears).total_seconds()
    to_zero = sampled * first / (last - first)
    spacing = grid.spacing(since, until, appears)
    return to_zero < (appears - since).total_seconds() and to_zero < 1.1 * spacing


def counter(
    name: str, labels: Mapping[str, str], events: Events, grid: Grid, appears=None
) -> dict[str, list[Sample]]:
    """One counter series for the fixture: {'name{labels}': samples}."""
    return {series_key(name, labels): events.samples(grid, appears)}


def histogram(
    family: str, labels: Mapping[str, str], buckets: Mapping[str, Events], grid: Grid
) -> dict[str, list[Sample]]:
    """A histogram's series for the fixture: `buckets` maps each `le` (as written,
    "0.25", "+Inf") to the events at or under it; `_count` is the +Inf bucket, `_sum`
    counts each event as an eighth of a second (exact in binary, read by nobody).
    Declare it with types={family: "histogram"}."""
    if "+Inf" not in buckets:
        raise ValueError("a histogram needs its +Inf bucket")
    ordered = sorted(buckets.items(), key=lambda item: float(item[0]))
    for (_, lower), (le, upper) in itertools.pairwise(ordered):
        if any(a > b for a, b in zip(lower.counts, upper.counts, strict=True)):
            raise ValueError(f"bucket le={le} counts fewer events than a lower bucket")
    series = {
        series_key(f"{family}_bucket", {**labels, "le": le}): events.samples(grid)
        for le, events in ordered
    }
    count = buckets["+Inf"]
    series[series_key(f"{family}_count", labels)] = count.samples(grid)
    series[series_key(f"{family}_sum", labels)] = [
        (at, value / 8) for at, value in count.samples(grid)
    ]
    return series


def gauge(
    name: str, labels: Mapping[str, str], value: Callable[[datetime], float], times: Iterable
) -> dict[str, list[Sample]]:
    """A gauge series sampled at `times`: {'name{labels}': [(t, value(t)), ...]}."""
    return {series_key(name, labels): [(at, float(value(at))) for at in times]}
