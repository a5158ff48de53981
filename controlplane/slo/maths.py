"""SLO arithmetic, after the Google SRE Workbook (as Sloth and Pyrra implement it), in
pure functions over floats: no model, no query, no clock.

Words used throughout (see ../shared/PROTOCOLS.md, "SLO maths"):

- objective `o`: percent, strictly between 0 and 100 (99.9);
- error budget `B = 1 - o/100`: the share of events (or time slices) allowed to be bad;
- error ratio `r = bad / total` over a window; `None` when the window saw no traffic;
- burn rate `r / B`: 1 spends exactly the budget over the SLO window;
- budget remaining `(B - r) / B` over the SLO window: 1 untouched, 0 spent, below 0 overspent.

Time-slice budgeting uses the same functions with slices for events: good slices and
all slices (`timeslice_sli`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from types import MappingProxyType
from typing import Literal

from controlplane.slo.definition import BURN_WINDOWS

TierName = Literal["fast", "medium", "slow", "long"]
Severity = Literal["page", "ticket"]
Status = Literal["ok", "warning", "breaching", "exhausted", "insufficient_traffic", "no_data"]

# The key of the SLO window itself in `verdict`'s counts, beside the BURN_WINDOWS names.
LONG = "long"


def error_budget(objective: float) -> float:
    """B = 1 - objective / 100, the objective in percent (0 < objective < 100).

    Worked out on the objective as written (its shortest decimal, "99.9") in exact
    fractions and rounded once, so B is the float nearest the true budget: 0.001 for
    99.9, where `1 - 99.9 / 100` gives 0.00099999999999989 and `1 - 0.999` gives
    0.0010000000000000009. Then an error ratio of exactly the budget (1 bad in 1,000,
    itself rounded once) leaves exactly 0 remaining, and a burn rate of exactly 1.
    Whatever else compares with the budget (the exported Prometheus rules) must use
    this float, written with repr, not recompute it.
    """
    if not 0 < objective < 100:  # also refuses NaN
        raise ValueError(f"objective must be a percentage strictly between 0 and 100: {objective}")
    return float((100 - Fraction(repr(float(objective)))) / 100)


def _checked(good: float, total: float) -> None:
    if not (math.isfinite(good) and math.isfinite(total)):
        raise ValueError(f"event counts must be finite numbers: good={good}, total={total}")


def error_ratio(good: float, total: float) -> float | None:
    """r = (total - good) / total; None when total is 0 (no traffic: nothing to judge).

    Counts come from `increase()`, which extrapolates each counter on its own, so good
    can come out slightly above total (or below 0); such inconsistent inputs are clamped
    into [0, 1] rather than giving a negative error ratio. A negative total is no
    traffic too. Counts must be finite (a NaN from the source is the caller's no_data).
    """
    _checked(good, total)
    if total <= 0:
        return None
    return min(1.0, max(0.0, (total - good) / total))


def sli(good: float, total: float) -> float | None:
    """The SLI, good / total (clamped into [0, 1] as `error_ratio` is); None without traffic."""
    _checked(good, total)
    if total <= 0:
        return None
    return min(1.0, max(0.0, good / total))


def timeslice_sli(good_slices: float, total_slices: float) -> float | None:
    """Time-slice SLI: the share of good slices, good_slices / total_slices; None when
    no slice has been measured yet. Its error ratio is `error_ratio(good_slices,
    total_slices)` and everything else follows as for events."""
    return sli(good_slices, total_slices)


def budget_remaining(error_ratio: float | None, objective: float) -> float:
    """(B - r) / B: 1.0 with no traffic (r is None) or no errors, 0 when the errors are
    exactly the budget, negative when overspent. Not clamped: the status says
    `exhausted` and the board shows by how much."""
    budget = error_budget(objective)
    if error_ratio is None:
        return 1.0
    return (budget - error_ratio) / budget


def burn_rate(error_ratio: float | None, objective: float) -> float | None:
    """r / B: how many budgets per SLO window the errors spend; None without traffic."""
    budget = error_budget(objective)
    if error_ratio is None:
        return None
    return error_ratio / budget


def time_to_exhaustion(remaining: float, burn: float | None, window: timedelta) -> timedelta | None:
    """remaining * window / burn: at burn rate b the errors spend b budgets per window,
    so what remains lasts remaining / b windows.

    PROTOCOLS' "window / burn rate" is the case remaining = 1 (a full budget).
    timedelta(0) when nothing remains (remaining <= 0); None when the budget never runs
    out at this rate: no traffic (burn None), no errors (burn 0), or a rate so small that
    it would take more than a century (LONGEST_EXHAUSTION: "never" for anyone reading
    it, and beyond what every database stores as a duration).
    """
    if remaining <= 0:
        return timedelta(0)
    if burn is None or burn <= 0:
        return None
    try:
        until = window * (remaining / burn)
    except OverflowError:
        return None
    return until if until <= LONGEST_EXHAUSTION else None


LONGEST_EXHAUSTION = timedelta(days=36_500)


@dataclass(frozen=True)
class Tier:
    """One multiwindow burn-rate condition: both windows' error ratios above
    factor * B, where factor = budget_spent * SLO window length / long_window."""

    name: TierName
    severity: Severity
    long_window: str
    short_window: str
    budget_spent: float
    factor: float


# The Workbook's four pairs: (name, severity, long window, short window, budget spent).
TIER_TABLE: tuple[tuple[TierName, Severity, str, str, float], ...] = (
    ("fast", "page", "1h", "5m", 0.02),
    ("medium", "page", "6h", "30m", 0.05),
    ("slow", "ticket", "1d", "2h", 0.10),
    ("long", "ticket", "3d", "6h", 0.10),
)


def _microseconds(length: timedelta) -> int:
    return length // timedelta(microseconds=1)


def whole_slices(tier: Tier, slice_length: timedelta | None) -> bool:
    """Whether both windows of the tier hold a whole number of time slices (always, for
    occurrences: `slice_length` None). Slices are aligned to the epoch, so a window that
    is not a multiple of the slice holds one slice now and none five minutes later: a
    tier reading it would open and resolve on the clock, not on the burn."""
    if slice_length is None:
        return True
    return all(
        BURN_WINDOWS[window] >= slice_length and not BURN_WINDOWS[window] % slice_length
        for window in (tier.long_window, tier.short_window)
    )


def tiers(window_length: timedelta, slice_length: timedelta | None = None) -> tuple[Tier, ...]:
    """The four tiers for an SLO window of this length, factor = budget_spent *
    window_length / long_window: 14.4, 6, 3, 1 for 30 days; 13.44, 5.6, 2.8, 0.9333...
    for 28 days. Calendar windows pass their period's actual length
    (`windows.window_length`: 31 days, or 743 h for a month that loses an hour to DST).
    With `slice_length` (time slices), only the tiers whose windows hold whole slices.

    Computed in exact fractions and rounded once, so 30 days gives exactly the float
    14.4 (not 0.02 * 720's neighbour) and the exported rules show the Workbook's figures.
    """
    if window_length <= timedelta(0):
        raise ValueError(f"the SLO window must be longer than zero: {window_length}")
    found = []
    for name, severity, long_window, short_window, spent in TIER_TABLE:
        ratio = Fraction(_microseconds(window_length), _microseconds(BURN_WINDOWS[long_window]))
        factor = float(Fraction(repr(spent)) * ratio)
        found.append(Tier(name, severity, long_window, short_window, spent, factor))
    return tuple(tier for tier in found if whole_slices(tier, slice_length))


def alert_threshold(tier: Tier, objective: float) -> float:
    """factor * B: the error ratio both windows of the tier must exceed.

    The exported Prometheus alert compares `ratio > <this float>` (written with repr),
    so the control plane and Prometheus agree even at the boundary.
    """
    return tier.factor * error_budget(objective)


def holds(tier: Tier, error_ratios: Mapping[str, float | None], objective: float) -> bool:
    """Both of the tier's windows have an error ratio strictly above factor * B.

    Error ratios are compared with factor * B, never burn rates with factor: r / B > f
    and r > f * B can disagree by one rounding at the boundary, and Prometheus evaluates
    the latter. A window missing or without traffic (None) never holds.
    """
    threshold = alert_threshold(tier, objective)
    for window in (tier.long_window, tier.short_window):
        ratio = error_ratios.get(window)
        if ratio is None or not ratio > threshold:
            return False
    return True


def status(
    measured: bool,
    events: float,
    min_events: float,
    remaining: float,
    holding: Iterable[Tier],
) -> Status:
    """The SLO's status, the first of these that applies (this order exactly):

    1. `no_data`: the SLO window could not be measured (source down, no series);
    2. `insufficient_traffic`: fewer than `min_events` events in the SLO window;
    3. `exhausted`: no budget remains (remaining <= 0);
    4. `breaching`: a page tier holds;
    5. `warning`: a ticket tier holds;
    6. `ok`.
    """
    if not measured:
        return "no_data"
    if events < min_events:
        return "insufficient_traffic"
    if remaining <= 0:
        return "exhausted"
    severities = {tier.severity for tier in holding}
    if "page" in severities:
        return "breaching"
    if "ticket" in severities:
        return "warning"
    return "ok"


@dataclass(frozen=True)
class Verdict:
    """One evaluation's outcome.

    `holding` are the tiers whose alerts should be open now, page and ticket alike (the
    caller holds tickets back while a page is open, and skips tiers the SLO turned off).
    It is empty under `insufficient_traffic` (low traffic keeps the alerts quiet, so they
    resolve) and under `no_data`, where it means nothing: the caller resolves nothing.
    `sli`, `budget_remaining` and `events` are None only under `no_data`; `sli` is also
    None with no traffic. `burn_rates` has every BURN_WINDOWS name, None where that
    window was not measured or saw no traffic.
    """

    status: Status
    holding: tuple[Tier, ...]
    sli: float | None
    budget_remaining: float | None
    burn_rates: Mapping[str, float | None]
    time_to_exhaustion: timedelta | None
    events: float | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "burn_rates", MappingProxyType(dict(self.burn_rates)))


def _ratio_of(measured: tuple[float, float] | None) -> float | None:
    return None if measured is None else error_ratio(*measured)


def verdict(
    objective: float,
    window_length: timedelta,
    counts: Mapping[str, tuple[float, float] | None],
    min_events: float = 0,
    slice_length: timedelta | None = None,
) -> Verdict:
    """Everything an evaluation decides from its measurements.

    `counts` maps a window name to its (good, total) increases, or None when it could
    not be measured: the SLO window under `LONG` ("long"), the burn-rate windows under
    their BURN_WINDOWS names ("5m" ... "3d"); a window left out counts as not measured.
    `window_length` is the SLO window's full length (`windows.window_length`).
    """
    error_budget(objective)  # refuse a bad objective even when nothing was measured
    ratios = {name: _ratio_of(counts.get(name)) for name in BURN_WINDOWS}
    burn_rates = {name: burn_rate(ratio, objective) for name, ratio in ratios.items()}
    long = counts.get(LONG)
    if long is None:
        return Verdict("no_data", (), None, None, burn_rates, None, None)

    good, events = long
    remaining = budget_remaining(error_ratio(good, events), objective)
    quiet = events < min_events
    usable = tiers(window_length, slice_length)
    holding = () if quiet else tuple(t for t in usable if holds(t, ratios, objective))
    # The 1h burn rate (the fast page tier's long window) projects the exhaustion: short
    # enough to follow a change of pace within the hour, long enough that one bad
    # five minutes does not announce the end of the budget.
    until = time_to_exhaustion(remaining, burn_rates["1h"], window_length)
    return Verdict(
        status=status(True, events, min_events, remaining, holding),
        holding=holding,
        sli=sli(good, events),
        budget_remaining=remaining,
        burn_rates=burn_rates,
        time_to_exhaustion=until,
        events=events,
    )


def ideal_remaining(start: datetime, end: datetime, at: datetime) -> float:
    """The ideal burn-down line of a budget spent evenly over [start, end]:
    1 - (at - start) / (end - start), clamped into [0, 1] outside the window."""
    if end <= start:
        raise ValueError(f"the window must end after it starts: {start} .. {end}")
    return min(1.0, max(0.0, 1 - (at - start) / (end - start)))
