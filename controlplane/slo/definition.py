"""What an SLO promises, as plain values: the shape the maths, the queries, the
Prometheus rule export and OpenSLO share, apart from the database row.

`SLO.definition()` (models.py) builds one of these from a row; nothing here does I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

Op = Literal[">", ">=", "<", "<=", "==", "!="]
Period = Literal["week", "month", "quarter"]
Budgeting = Literal["occurrences", "timeslices"]

# Rolling windows SLO managers may choose, by the name the API and the admin use.
ROLLING = {"7d": timedelta(days=7), "28d": timedelta(days=28), "30d": timedelta(days=30)}
CALENDAR: tuple[Period, ...] = ("week", "month", "quarter")
WINDOW_NAMES = (*ROLLING, *CALENDAR)

# What an SLO's alerts, recordings and measurements label themselves with: an SLO's own
# labels may not use them.
RESERVED_LABELS = frozenset(
    {
        "slo",
        "organization",
        "slo_revision",
        "severity",
        "burn_tier",
        "long_window",
        "short_window",
        "slo_window",
        "slo_part",
        "alertname",
    }
)

# The windows every evaluation measures burn rates over (the Workbook's pairs).
BURN_WINDOWS: dict[str, timedelta] = {
    "5m": timedelta(minutes=5),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "2h": timedelta(hours=2),
    "6h": timedelta(hours=6),
    "1d": timedelta(days=1),
    "3d": timedelta(days=3),
}


@dataclass(frozen=True)
class Ratio:
    """Events counted by counters: `good` or `bad` (exactly one) against `total`.

    Each is a counter selector such as
    `http_server_request_duration_seconds_count{http_response_status_code=~"5.."}`;
    the queries wrap them in `increase()` and `sum()`.
    """

    total: str
    good: str | None = None
    bad: str | None = None


@dataclass(frozen=True)
class Latency:
    """Requests faster than `threshold` seconds, read from a histogram: good is the
    `<metric>_bucket` series with `le` = `le`, total is `<metric>_count`.

    `selector` is the label filter without braces (`route="/api/v1/slos/"`, may be
    empty); `le` is the bucket's label value as the source spells it ("0.25", "1.0"),
    found when the SLO was checked against its source.
    """

    metric: str
    threshold: float
    le: str
    selector: str = ""


@dataclass(frozen=True)
class Threshold:
    """A time slice is good when `expr op threshold` holds for every series `expr`
    returns in it (e.g. the age of the last good backup < 86400)."""

    expr: str
    op: Op
    threshold: float


@dataclass(frozen=True)
class Rpo:
    """A time slice is good when the last successful run of the backup monitor `job`
    (its slug) finished less than `target` before the slice's end. Measured from the
    control plane's own job runs, not a source (objectives.py)."""

    job: str | None
    target: timedelta


@dataclass(frozen=True)
class Rto:
    """Each restore is an event, good within `target`: the successful runs of the
    restore-drill monitor `job`, and the critical alerts of `services` (resolved minus
    started). Measured from the control plane's own rows (objectives.py)."""

    job: str | None
    services: tuple[str, ...]
    target: timedelta


Indicator = Ratio | Latency | Threshold | Rpo | Rto
# The indicators no Prometheus measures: the rule and OpenSLO exports leave them out.
INTERNAL = (Rpo, Rto)


@dataclass(frozen=True)
class Window:
    """Rolling (`length`) or calendar-aligned (`period` in `time_zone`, resetting at
    local midnight: weeks start on Monday, quarters in January, April, July, October)."""

    length: timedelta | None = None
    period: Period | None = None
    time_zone: str = "UTC"

    @property
    def rolling(self) -> bool:
        return self.length is not None

    @property
    def name(self) -> str:
        if self.period is not None:
            return self.period
        for name, length in ROLLING.items():
            if length == self.length:
                return name
        days, rest = divmod(self.length or timedelta(0), timedelta(days=1))
        return f"{days}d" if not rest else f"{int((self.length or timedelta(0)).total_seconds())}s"

    @classmethod
    def named(cls, name: str, time_zone: str = "UTC") -> Window:
        if name in ROLLING:
            return cls(length=ROLLING[name], time_zone=time_zone)
        if name in CALENDAR:
            return cls(period=name, time_zone=time_zone)  # type: ignore[arg-type]
        raise ValueError(f"unknown window {name!r}: use one of {', '.join(WINDOW_NAMES)}")


@dataclass(frozen=True)
class Definition:
    """One SLO: its indicator, objective (percent, strictly between 0 and 100),
    window and budgeting method, and when its burn-rate alerts may speak."""

    slug: str
    name: str
    indicator: Indicator
    objective: float
    window: Window
    budgeting: Budgeting = "occurrences"
    # Time slices: each slice is good when its own ratio reaches slice_target (a
    # fraction, 0 < t <= 1; a slice without traffic is good); threshold SLIs only
    # use time slices and ignore slice_target.
    slice_length: timedelta = timedelta(minutes=5)
    slice_target: float | None = None
    min_events: int = 0
    page: bool = True
    ticket: bool = True
    labels: dict[str, str] = field(default_factory=dict)
    service: str | None = None
    organization: str | None = None

    @property
    def revision(self) -> str:
        """A short digest of what the SLI counts (indicator, budgeting, slices): the
        exported recordings carry it, so the fast path never sums what an earlier
        definition of the same slug recorded."""
        counted = repr((self.indicator, self.budgeting, self.slice_length, self.slice_target))
        return hashlib.sha256(counted.encode()).hexdigest()[:12]

    @property
    def budget(self) -> float:
        """The error budget as a fraction: 1 - objective, rounded once (maths.error_budget)."""
        from controlplane.slo.maths import error_budget  # maths imports this module

        return error_budget(self.objective)
