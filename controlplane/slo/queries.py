"""The PromQL an SLO evaluation sends, as pure string builders, and the reading of
the answer.

One instant query measures everything an evaluation needs: the good and total
counts of the SLO window ("long") and of every burn-rate window
(`definition.BURN_WINDOWS`). Each answer sample carries two labels added with
`label_replace`: `slo_window` (the window's name) and `slo_part` ("good" or
"total"); `read_measurement` turns the samples back into {window: (good, total)}.

Occurrences (events): a window's counts are its counters' increases,
`sum(increase(SELECTOR[w]))`. The SLO window's SLI is the ratio of its good and
total *increases*, never an average of shorter ratios (Sloth's 30-day SLI averages
5-minute ratios, which spiky traffic biases). A `bad` counter gives good = total -
bad. An error counter often does not exist until the first error, so a missing bad
(or good) counter counts as 0 events while the total is there; with no total at all
the window has no sample and is absent from the measurement (no data).

Latency: good is `<metric>_bucket{<selector>,le="<le>"}`, total `<metric>_count{<selector>}`.
A missing bucket is not taken for zero: it means the `le` is spelt differently from
the source's, which SLO validation catches (`bucket_for`).

Time slices: good is the number of good slices and total the number of slices
measured in the window, from a subquery stepping by the slice length
(`[w:slice]`, whose steps Prometheus aligns to the epoch). A slice of a ratio or
latency SLI is good when its own ratio reaches the slice target (a slice without
traffic is good: 0/0 is not below any target); a slice of a threshold SLI is good
when `min((expr) <op> bool threshold)` is 1, i.e. every series `expr` returns holds
at the slice's end. A slice in which the SLI's series do not exist at all (no total
counter, `expr` empty) is not measured: it counts neither as good nor as a slice.

The fast path (occurrences only): the SLO window reads the recording rules the
Prometheus export writes (`slo:good_events:increase5m` and
`slo:total_events:increase5m`, non-overlapping 5-minute increases, see rules.py)
summed over the window, instead of an increase over 30 days of raw samples. The
burn-rate windows stay exact: they are short. `coverage_query` and `covers` tell
whether the recordings go back far enough to be used.

Ranges: Prometheus 2 includes both ends of a range, Prometheus 3 only the right one.
Where a sample exactly at the left edge would count twice (one slice or one 5-minute
recording too many), the range is written one millisecond short, which reads
(t - w, t] on both.

Selectors and expressions are pasted into larger queries. A SELECTOR (ratio good,
bad and total) must be an instant-vector selector, `name{label="value",...}`,
because the queries append a range (`SELECTOR[w]`); the latency `selector` is a
label filter without braces; a threshold `expr` may be any instant-vector expression
(it is parenthesised). Whether they parse and match series is checked against the
source elsewhere (validation.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import timedelta

from controlplane.promql.client import Sample
from controlplane.promql.durations import format_duration
from controlplane.slo.definition import (
    BURN_WINDOWS,
    Definition,
    Indicator,
    Latency,
    Ratio,
    Threshold,
)

LONG = "long"
WINDOW_LABEL = "slo_window"
PART_LABEL = "slo_part"
PARTS = ("good", "total")
WINDOWS = (LONG, *BURN_WINDOWS)

# The recording rules of the export (rules.py) that the fast path reads.
GOOD_EVENTS = "slo:good_events:increase5m"
TOTAL_EVENTS = "slo:total_events:increase5m"
RECORDING_STEP = timedelta(minutes=5)

# How many 5-minute recordings may be missing from the window before the fast path is
# refused: the rule group's first and last evaluations rarely line up with the window's
# ends.
_MISSING_AT_THE_ENDS = 2
_ONE_MS = timedelta(milliseconds=1)


def measurement_query(
    definition: Definition,
    long_window: timedelta,
    *,
    fast_path: bool = False,
    organization: str = "",
) -> str:
    """One instant query measuring good and total over the SLO window and each burn window.

    `long_window` is the SLO window to measure, a whole number of seconds (30 days, or
    a calendar period so far). `fast_path` (occurrences only; ignored for time slices)
    reads the long window from the export's 5-minute recordings of `organization`'s
    SLO (default: `definition.organization`).
    """
    _check_long_window(long_window)
    windows = {LONG: long_window, **BURN_WINDOWS}
    parts = []
    for name, length in windows.items():
        if definition.budgeting == "timeslices":
            good, total = _slice_counts(definition, length)
        elif fast_path and name == LONG:
            good, total = _recorded_counts(definition, length, organization)
        else:
            good, total = _event_counts(definition.indicator, length)
        parts.append(_labelled(good, name, "good"))
        parts.append(_labelled(total, name, "total"))
    return "\nor\n".join(parts)


def coverage_query(definition: Definition, long_window: timedelta, organization: str) -> str:
    """How many 5-minute total recordings of the SLO lie in the long window (one sample,
    absent when there are none): `covers` says whether that is enough for the fast path."""
    _check_long_window(long_window)
    recorded = f"{TOTAL_EVENTS}{_recording_matchers(definition, organization)}"
    return f"sum(count_over_time({recorded}[{open_range(long_window)}]))"


def covers(samples: Iterable[Sample], long_window: timedelta) -> bool:
    """Whether the answer of `coverage_query` shows recordings over the whole window:
    one per 5 minutes, allowing a point or two missing at the ends."""
    found = sum(sample.value for sample in samples if math.isfinite(sample.value))
    expected = long_window // RECORDING_STEP
    return found >= max(1, expected - _MISSING_AT_THE_ENDS)


def read_measurement(samples: Iterable[Sample]) -> dict[str, tuple[float, float]]:
    """{window name: (good, total)} from the answer of `measurement_query`; a window
    whose good or total is missing is left out (not measured).

    ValueError for a sample without the `slo_window` and `slo_part` labels, with an
    unknown window or part, or twice the same: the answer is not one of ours.
    """
    found: dict[tuple[str, str], float] = {}
    for sample in samples:
        window = sample.labels.get(WINDOW_LABEL)
        part = sample.labels.get(PART_LABEL)
        if window is None or part is None:
            raise ValueError(
                f"a sample has no {WINDOW_LABEL} and {PART_LABEL} labels: {dict(sample.labels)}"
            )
        if window not in WINDOWS or part not in PARTS:
            raise ValueError(f"unknown window {window!r} or part {part!r} in the measurement")
        if (window, part) in found:
            raise ValueError(f"two samples for the {part} of window {window!r}")
        found[(window, part)] = sample.value
    return {
        window: (found[(window, "good")], found[(window, "total")])
        for window in WINDOWS
        if (window, "good") in found and (window, "total") in found
    }


def latency_buckets_query(metric: str, selector: str) -> str:
    """The `le` values the histogram `metric` has under the label filter `selector`
    (no braces; may be empty): one sample per bucket bound."""
    return f"count by (le) ({_series(metric + '_bucket', selector)})"


def bucket_for(threshold: float, les: Iterable[str]) -> str | None:
    """The `le` label value numerically equal to `threshold`, spelt as the source spells
    it ("0.25", "1", "1.0"); None when no bucket bound equals it. Should two spellings
    of the same bound exist, the lexically first is chosen, so the answer is stable."""
    if not math.isfinite(threshold):
        return None
    matching = []
    for le in les:
        try:
            bound = float(le)
        except ValueError:
            continue
        if bound == threshold:
            matching.append(le)
    return min(matching) if matching else None


# Builders shared with the rule export (rules.py).


def duration(length: timedelta) -> str:
    """A Prometheus duration for a window or slice length ("5m", "30d", "1234567s" as
    "14d6h56m7s")."""
    if length <= timedelta(0):
        raise ValueError(f"a window must be longer than zero: {length}")
    return format_duration(length)


def open_range(length: timedelta) -> str:
    """A range reading (t - length, t] on Prometheus 2 and 3 alike: one millisecond short
    of `length`, so that a sample exactly `length` ago is left out."""
    return duration(length - _ONE_MS)


def total_events(indicator: Ratio | Latency, window: str) -> str:
    """All events over `window` (a duration): one labelless sample, absent without series."""
    if isinstance(indicator, Ratio):
        return f"sum(increase({_selector(indicator.total, 'total')}[{window}]))"
    return f"sum(increase({_series(indicator.metric + '_count', indicator.selector)}[{window}]))"


def good_events(indicator: Ratio | Latency, window: str) -> str:
    """Good events over `window`: absent when the total is; a missing good or bad counter
    counts as 0 while the total is there (error counters appear at the first error)."""
    total = total_events(indicator, window)
    if isinstance(indicator, Latency):
        bucket = _series(indicator.metric + "_bucket", indicator.selector, le=indicator.le)
        return f"sum(increase({bucket}[{window}]))"
    if indicator.good is not None and indicator.bad is None:
        good = f"sum(increase({_selector(indicator.good, 'good')}[{window}]))"
        return f"({good} or vector(0)) and on() {total}"
    if indicator.bad is not None and indicator.good is None:
        bad = f"sum(increase({_selector(indicator.bad, 'bad')}[{window}]))"
        return f"{total} - ({bad} or vector(0))"
    raise ValueError("a ratio SLI has a good or a bad counter selector, not both and not neither")


def error_ratio(indicator: Ratio | Latency, window: str) -> str:
    """(total - good) / total over `window` (bad / total for a bad counter): NaN without
    traffic, absent without a total series (for the rules' burn-rate windows)."""
    total = total_events(indicator, window)
    if isinstance(indicator, Ratio) and indicator.bad is not None and indicator.good is None:
        bad = f"sum(increase({_selector(indicator.bad, 'bad')}[{window}]))"
        return f"({bad} or vector(0)) / {total}"
    if isinstance(indicator, Ratio) and indicator.good is not None and indicator.bad is None:
        good = f"sum(increase({_selector(indicator.good, 'good')}[{window}]))"
        return f"({total} - ({good} or vector(0))) / {total}"
    return f"({total} - {good_events(indicator, window)}) / {total}"


def slice_good(definition: Definition) -> str:
    """1 when the slice of `definition.slice_length` ending at the evaluation time is good,
    0 when bad; absent when the SLI has no series then. One labelless sample."""
    indicator = definition.indicator
    if isinstance(indicator, Threshold):
        # On lines of its own: a trailing # comment in the expression ends at its line.
        expr = indicator.expr.strip()
        return f"min((\n{expr}\n) {indicator.op} bool {number(indicator.threshold)})"
    target = definition.slice_target
    if target is None or not (math.isfinite(target) and 0 < target <= 1):
        raise ValueError(f"time slices of a {_kind(indicator)} SLI need a slice target in (0, 1]")
    slice_ = duration(definition.slice_length)
    good = good_events(indicator, slice_)
    total = total_events(indicator, slice_)
    # A slice without traffic gives 0/0 = NaN, which is below no target: good.
    return f"1 - (({good}) / {total} < bool {number(target)})"


def number(value: float) -> str:
    """A float as PromQL reads it back exactly (repr), negative ones parenthesised."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"a threshold must be a finite number, not {value}")
    text = repr(value)
    return f"({text})" if value < 0 else text


def label_value(value: str) -> str:
    """A double-quoted PromQL string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def recording_selector(name: str, organization: str, slug: str) -> str:
    """`name{slo="<slug>",organization="<org>"}`: one SLO's recorded series."""
    return f"{name}{{slo={label_value(slug)},organization={label_value(organization)}}}"


# Internals.


def _check_long_window(long_window: timedelta) -> None:
    if long_window <= timedelta(0) or long_window % timedelta(seconds=1):
        raise ValueError(
            f"the SLO window must be a positive whole number of seconds, not {long_window}"
        )


def _labelled(expr: str, window: str, part: str) -> str:
    inner = f'label_replace({expr}, "{WINDOW_LABEL}", "{window}", "", "")'
    return f'label_replace({inner}, "{PART_LABEL}", "{part}", "", "")'


def _event_counts(indicator: Indicator, length: timedelta) -> tuple[str, str]:
    if isinstance(indicator, Threshold):
        raise ValueError("a threshold SLI is budgeted by time slices only")
    window = duration(length)
    return good_events(indicator, window), total_events(indicator, window)


def _recorded_counts(
    definition: Definition, length: timedelta, organization: str
) -> tuple[str, str]:
    matchers = _recording_matchers(definition, organization)
    window = open_range(length)
    return (
        f"sum(sum_over_time({GOOD_EVENTS}{matchers}[{window}]))",
        f"sum(sum_over_time({TOTAL_EVENTS}{matchers}[{window}]))",
    )


def _slice_counts(definition: Definition, length: timedelta) -> tuple[str, str]:
    slices = f"({slice_good(definition)})[{open_range(length)}:{duration(definition.slice_length)}]"
    return f"sum_over_time({slices})", f"count_over_time({slices})"


def _recording_matchers(definition: Definition, organization: str) -> str:
    organization = organization or definition.organization or ""
    # The revision: recordings of an earlier definition of this slug are not this SLI's.
    return (
        f"{{slo={label_value(definition.slug)},organization={label_value(organization)},"
        f"slo_revision={label_value(definition.revision)}}}"
    )


def _selector(selector: str | None, field: str) -> str:
    selector = (selector or "").strip()
    if not selector:
        raise ValueError(f"the {field} counter selector is empty")
    return selector


def _series(name: str, selector: str, le: str | None = None) -> str:
    selector = selector.strip().rstrip(",").strip()
    matchers = [selector] if selector else []
    if le is not None:
        matchers.append(f"le={label_value(le)}")
    return f"{name}{{{','.join(matchers)}}}" if matchers else name


def _kind(indicator: Indicator) -> str:
    return type(indicator).__name__.lower()
