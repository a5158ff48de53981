"""SLOs as a Prometheus rule file, and the `promtool test rules` file that proves its
alerts, as pure functions (`export_prometheus_rules` writes them).

What the rule file holds, per SLO (labels on every series: `slo`, `organization` and
the SLO's own labels):

- occurrences: group `slo:<org>/<slug>:events`, interval 5m, recording
  `slo:good_events:increase5m` and `slo:total_events:increase5m`, the numerator and
  the denominator *separately*, as non-overlapping 5-minute increases. Summed over
  30 days they give the window's SLI as a ratio of increases, which is what the
  control plane's fast path reads (queries.py), never an average of 5-minute ratios.
- time slices: group `slo:<org>/<slug>:slices`, interval = the slice length,
  recording `slo:good_slices:count` (1 when the slice that just ended was good, else 0)
  and `slo:slices:count` (1 for every slice measured). Prometheus starts a group's
  evaluations at an offset of its own (a hash), so these slices end at those times,
  not on the epoch-aligned boundaries the control plane's own evaluation uses: the two
  count the same kind of slices, shifted by up to one slice.
- group `slo:<org>/<slug>:burn-rate` (the global evaluation interval): the error ratio
  of every window an enabled alert tier uses, then the alerts, so that each alert reads
  ratios recorded in the same evaluation.
  - occurrences: `slo:sli_error:ratio_increase<w>` = (total - good) / total of the
    counters' increases over <w> (bad / total for a bad counter), computed from the
    raw counters exactly as the control plane measures its burn windows, so both
    judge on the same numbers;
  - time slices: `slo:sli_error:ratio_slices<w>` = 1 - good slices / slices over <w>.
    A tier is exported only when both its windows hold a whole number of slices
    (a 5m window says nothing about 1h slices); the file's header names those left out.
  - alert `SLOBurnRate` per enabled tier, labels `severity` (page/ticket), `burn_tier`
    (fast/medium/slow/long), `long_window`, `short_window` (e.g. "1h", "5m"), `slo`,
    `organization` and the SLO's labels; annotations `summary`, `description` and
    `runbook_url` when one is given. It fires when both windows' error ratios exceed
    factor * (1 - objective / 100) (maths.alert_threshold, written with repr so that
    Prometheus and the control plane compare the same float), and, when the SLO has a
    minimum number of events, only while the SLO window holds at least that many
    (total events, or slices for time slices): low traffic keeps it quiet, as the
    control plane's evaluation does.
- group `slo:<org>/<slug>:meta` (the global evaluation interval, so that an instant
  query never finds it older than the lookback): what Prometheus cannot know of the
  SLO, as constants for dashboards (controlplane/dashboards/slos.py) and ad hoc
  queries: `slo:objective:ratio` (the objective as a fraction, 0.999 for 99.9, worked
  out from the objective as written like maths.error_budget: not 99.9 / 100, which is
  0.9990000000000001), `slo:error_budget:ratio` (maths.error_budget's float: the
  budget the alerts' thresholds multiply, which 1 - objective recomputed in floats is
  not), `slo:min_events:count` (the low-traffic minimum over the window, 0 when none)
  and `slo:window:seconds` (the window's length as the gate reads it; for a calendar
  window, the period current at export), all written with repr inside `vector()`.
  Every SLO with rules has it, alerts or not; no alert reads it.

Naming, compared: Sloth records `slo:sli_error:ratio_rate<w>` labelled `sloth_id`,
`sloth_service`, `sloth_slo`, and alerts per SLO with a `sloth_severity` label; Pyrra
records `<metric>:burnrate<w>` labelled `slo` and alerts `ErrorBudgetBurn` with
`long`, `short` and `severity`. We keep Sloth's `level:metric:operation` shape and
Pyrra's `slo` label, but our own operation names (`ratio_increase<w>`: a ratio of
increases; `increase5m`: one 5-minute increase) so that both tools can run beside us
in one Prometheus without series mixing, and one alert name, as Pyrra, whose labels
are the ones the control plane's own burn-rate alerts carry.

Factors come from the SLO window's length (maths.tiers). Prometheus has no calendar:
for a calendar window the factors use the length of the period current at export
time (`at`), and the low-traffic gate reads that length as a rolling window; the
file's header says so and when to export again.

Alerts have no `for`: as in the Workbook, the short window is what keeps a blip from
paging (Pyrra adds a `for`, Sloth does not).

The test file: for every SLO and exported tier, one `promtool test rules` case with a
scenario whose error ratios are known exactly (errors at about twice the tier's
threshold from some minute on), checked at the first evaluation where both windows
exceed the threshold (the tier's alert must fire), at the evaluation before, where
only the short window exceeds (it must not), and, where the scenario allows, after
the errors stop, where only the long window still exceeds (resolved). Every
SLOBurnRate alert the scenario makes fire at a check is listed, other tiers' too.
Inputs, decided per SLO:
- raw counters, when the SLI is occurrences of counters whose selectors are simple
  enough to synthesise matching series (a metric name and `label="value"` matchers)
  and no other SLO of the file reads those metrics (its alerts would join the test):
  the whole chain runs, from counters through the 5-minute recordings (the
  low-traffic gate) and error ratios to the alert. The page tiers' service has a
  clean long window before the errors; the ticket tiers' is young (errors after one
  short window), which keeps their day-long scenarios short;
- otherwise (regular expressions, threshold expressions, time slices, shared metrics)
  the error-ratio recordings themselves, and the gate's recording when there is one:
  the alert rules alone are proven. This relies on the SLO's own recording rules
  recording nothing without the raw series, true of any expression over metrics
  (not of `vector(1)` or `absent(...)`): the meta group's constants are recorded
  all the same, which is harmless because no alert reads them.
promtool evaluates every group at the test's `evaluation_interval` (5m), whatever the
group's own interval, in `group_eval_order` (recordings first); the gate sums its
5-minute recordings through a 5m-step subquery so that it counts each 5 minutes once
either way. promtool runs every rule of the file in every test, so the test file's
run time grows with the square of the number of SLOs: seven SLOs, 27 tests, about
8 s on one core.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction

import yaml

from controlplane.promql.durations import format_duration
from controlplane.slo import maths, windows
from controlplane.slo.definition import (
    BURN_WINDOWS,
    INTERNAL,
    RESERVED_LABELS,
    Definition,
    Latency,
    Ratio,
    Threshold,
)
from controlplane.slo.queries import (
    GOOD_EVENTS,
    RECORDING_STEP,
    TOTAL_EVENTS,
    duration,
    error_ratio,
    good_events,
    label_value,
    open_range,
    recording_selector,
    slice_good,
    total_events,
)

ALERT = "SLOBurnRate"
GOOD_SLICES = "slo:good_slices:count"
SLICES = "slo:slices:count"
OBJECTIVE = "slo:objective:ratio"
ERROR_BUDGET = "slo:error_budget:ratio"
MIN_EVENTS = "slo:min_events:count"
WINDOW = "slo:window:seconds"
# The test file's input interval and evaluation interval (every group, whatever its own:
# promtool ignores group intervals). Each evaluation costs every rule of the file, so
# evaluating every 5 minutes keeps a day-long scenario to seconds.
TEST_STEP = timedelta(minutes=1)
TEST_EVALUATION = timedelta(minutes=5)


def error_ratio_recording(definition: Definition, window: str) -> str:
    """The name of the recorded error ratio of `window` ("1h") for this SLO's budgeting."""
    if definition.budgeting == "timeslices":
        return f"slo:sli_error:ratio_slices{window}"
    return f"slo:sli_error:ratio_increase{window}"


def objective_ratio(objective: float) -> float:
    """The objective in percent as a fraction, worked out on the objective as written
    and rounded once (as maths.error_budget): 0.999 for 99.9, not 99.9 / 100."""
    return float(Fraction(repr(float(objective))) / 100)


@dataclass(frozen=True)
class _Plan:
    """What the export makes of one SLO at one instant."""

    organization: str
    definition: Definition
    window_length: timedelta
    tiers: tuple[maths.Tier, ...]  # exported: enabled, and whole slices
    left_out: tuple[maths.Tier, ...]  # enabled but not whole slices
    runbook_url: str

    @property
    def labels(self) -> dict[str, str]:
        return {
            "slo": self.definition.slug,
            "organization": self.organization,
            "slo_revision": self.definition.revision,
            **self.definition.labels,
        }

    @property
    def slices(self) -> bool:
        return self.definition.budgeting == "timeslices"

    @property
    def windows(self) -> list[str]:
        used = {w for tier in self.tiers for w in (tier.long_window, tier.short_window)}
        return [name for name in BURN_WINDOWS if name in used]

    def selector(self, name: str) -> str:
        return recording_selector(name, self.organization, self.definition.slug)

    @property
    def name(self) -> str:
        return f"{self.organization}/{self.definition.slug}"


def rule_groups(
    definitions: Iterable[tuple[str, Definition]],
    at: datetime,
    *,
    runbook_urls: Mapping[tuple[str, str], str] | None = None,
) -> dict:
    """The rule file (as a dict for `dump`) for these (organization slug, definition)
    pairs, factors computed for the windows as they stand at `at`. `runbook_urls` maps
    (organization, slug) to the URL the alerts' `runbook_url` annotation carries."""
    groups: list[dict] = []
    for plan in _plans(definitions, at, runbook_urls or {}):
        if plan.slices:
            groups.append(_slice_group(plan))
        else:
            groups.append(_events_group(plan))
        if plan.tiers:
            groups.append(_burn_rate_group(plan))
        groups.append(_meta_group(plan))
    return {"groups": groups}


def notes(definitions: Iterable[tuple[str, Definition]], at: datetime) -> list[str]:
    """What a reader of the rule file must know, as comment lines for its header."""
    lines = [
        f"SLO rules exported by the control plane at {at.isoformat()}.",
        "Recording rules and SLOBurnRate alerts: see controlplane/slo/rules.py for the names.",
    ]
    definitions = list(definitions)
    for organization, definition in definitions:
        if isinstance(definition.indicator, INTERNAL):
            lines.append(
                f"{organization}/{definition.slug}: left out: an "
                f"{type(definition.indicator).__name__.upper()} objective is measured by the "
                f"control plane from job runs and alerts, not by Prometheus."
            )
    for plan in _plans(definitions, at, {}):
        window = plan.definition.window
        if window.period is not None:
            start, end = windows.period_bounds(window.period, window.time_zone, at)
            lines.append(
                f"{plan.name}: calendar {window.period} in {window.time_zone}. Prometheus has "
                f"no calendar: the factors use the length of the period current at export, "
                f"{start.isoformat()} to {end.isoformat()} ({_hours(plan.window_length)}), and "
                f"the low-traffic gate reads that length as a rolling window. Export again "
                f"when the next period starts."
            )
        if plan.slices:
            lines.append(
                f"{plan.name}: time slices of {duration(plan.definition.slice_length)}, ending at "
                f"the slices group's evaluations (not on the epoch-aligned boundaries the "
                f"control plane uses)."
            )
        for tier in plan.left_out:
            lines.append(
                f"{plan.name}: no {tier.name} ({tier.long_window}/{tier.short_window}) alert: "
                f"its windows are not whole numbers of "
                f"{duration(plan.definition.slice_length)} slices."
            )
    return lines


def rule_tests(
    definitions: Iterable[tuple[str, Definition]],
    rule_file_name: str,
    at: datetime,
    *,
    runbook_urls: Mapping[tuple[str, str], str] | None = None,
) -> dict:
    """A `promtool test rules` file for the rule file `rule_file_name` made by
    `rule_groups` with the same arguments: per SLO and tier, proof that the alert fires
    when both windows exceed the threshold and not before."""
    definitions = list(definitions)
    tests = []
    plans = _plans(definitions, at, runbook_urls or {})
    for plan in plans:
        series = _synthetic_series(plan.definition)
        if series is not None and any(
            _may_read(other.definition, series) for other in plans if other is not plan
        ):
            # Another SLO's rules would read these counters and might fire in this test.
            series = None
        for tier in plan.tiers:
            if series is not None:
                tests.append(_counter_test(plan, tier, series))
            else:
                tests.append(_recording_test(plan, tier))
    return {
        "rule_files": [rule_file_name],
        "evaluation_interval": format_duration(TEST_EVALUATION),
        # Prometheus runs groups side by side; promtool one after the other, by name
        # unless told: recordings first, so that the gate counts the 5 minutes just
        # recorded, as the scenarios do.
        "group_eval_order": [group["name"] for group in rule_groups(definitions, at)["groups"]],
        "tests": tests,
    }


def dump(doc: dict, notes: Sequence[str] = ()) -> str:
    """YAML for a rule or test file, multi-line expressions as literal blocks, `notes`
    as comment lines at the top."""
    header = "".join(f"# {line}\n" for note in notes for line in note.splitlines())
    return header + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


# The rule file.


def _plans(
    definitions: Iterable[tuple[str, Definition]],
    at: datetime,
    runbook_urls: Mapping[tuple[str, str], str],
) -> list[_Plan]:
    plans = []
    seen = set()
    for organization, definition in definitions:
        if (organization, definition.slug) in seen:
            raise ValueError(f"SLO {organization}/{definition.slug} is given twice")
        seen.add((organization, definition.slug))
        if isinstance(definition.indicator, INTERNAL):
            continue  # RPO and RTO: no Prometheus series to record (objectives.py); noted
        reserved = sorted(
            name for name in definition.labels if name in RESERVED_LABELS or name.startswith("__")
        )
        if reserved:
            raise ValueError(
                f"SLO {organization}/{definition.slug} has labels the rules set: "
                f"{', '.join(reserved)}"
            )
        if isinstance(definition.indicator, Threshold) and definition.budgeting != "timeslices":
            raise ValueError(
                f"SLO {organization}/{definition.slug}: a threshold SLI needs time slices"
            )
        length = windows.window_length(definition.window, at)
        enabled = tuple(
            tier
            for tier in maths.tiers(length)
            if (definition.page if tier.severity == "page" else definition.ticket)
        )
        whole = tuple(tier for tier in enabled if _whole_slices(definition, tier))
        plans.append(
            _Plan(
                organization=organization,
                definition=definition,
                window_length=length,
                tiers=whole,
                left_out=tuple(tier for tier in enabled if tier not in whole),
                runbook_url=runbook_urls.get((organization, definition.slug), ""),
            )
        )
    return plans


def _whole_slices(definition: Definition, tier: maths.Tier) -> bool:
    slices = definition.slice_length if definition.budgeting == "timeslices" else None
    return maths.whole_slices(tier, slices)


def _events_group(plan: _Plan) -> dict:
    indicator = plan.definition.indicator
    assert isinstance(indicator, (Ratio, Latency))
    step = duration(RECORDING_STEP)
    return {
        "name": f"slo:{plan.name}:events",
        "interval": step,
        "rules": [
            {"record": GOOD_EVENTS, "expr": good_events(indicator, step), "labels": plan.labels},
            {"record": TOTAL_EVENTS, "expr": total_events(indicator, step), "labels": plan.labels},
        ],
    }


def _slice_group(plan: _Plan) -> dict:
    good = slice_good(plan.definition)
    return {
        "name": f"slo:{plan.name}:slices",
        "interval": duration(plan.definition.slice_length),
        "rules": [
            {"record": GOOD_SLICES, "expr": good, "labels": plan.labels},
            {"record": SLICES, "expr": f"count({good})", "labels": plan.labels},
        ],
    }


def _burn_rate_group(plan: _Plan) -> dict:
    rules: list[dict] = []
    for window in plan.windows:
        rules.append(
            {
                "record": error_ratio_recording(plan.definition, window),
                "expr": _error_ratio_expr(plan, window),
                "labels": plan.labels,
            }
        )
    for tier in plan.tiers:
        rules.append(_alert(plan, tier))
    return {"name": f"slo:{plan.name}:burn-rate", "rules": rules}


def _meta_group(plan: _Plan) -> dict:
    definition = plan.definition
    values = [
        (OBJECTIVE, repr(objective_ratio(definition.objective))),
        (ERROR_BUDGET, repr(definition.budget)),
        (MIN_EVENTS, repr(int(definition.min_events))),
        (WINDOW, repr(plan.window_length.total_seconds())),
    ]
    return {
        "name": f"slo:{plan.name}:meta",
        "rules": [
            {"record": name, "expr": f"vector({value})", "labels": plan.labels}
            for name, value in values
        ],
    }


def _error_ratio_expr(plan: _Plan, window: str) -> str:
    if plan.slices:
        span = open_range(BURN_WINDOWS[window])
        good = f"sum_over_time({plan.selector(GOOD_SLICES)}[{span}])"
        slices = f"sum_over_time({plan.selector(SLICES)}[{span}])"
        return f"1 - {good} / {slices}"
    indicator = plan.definition.indicator
    assert isinstance(indicator, (Ratio, Latency))
    return error_ratio(indicator, window)


def _gate(plan: _Plan) -> str:
    """The low-traffic condition, "" when the SLO has none."""
    if plan.definition.min_events <= 0:
        return ""
    span = open_range(plan.window_length)
    if plan.slices:
        counted = f"sum_over_time({plan.selector(SLICES)}[{span}])"
    else:
        # Stepping by 5m picks each 5-minute recording once, however often the group
        # actually ran (promtool runs every group at the test's evaluation interval).
        counted = f"sum_over_time({plan.selector(TOTAL_EVENTS)}[{span}:{duration(RECORDING_STEP)}])"
    return f"sum by (slo, organization) ({counted}) >= {plan.definition.min_events}"


def _alert_labels(plan: _Plan, tier: maths.Tier) -> dict[str, str]:
    return {
        **plan.labels,
        "severity": tier.severity,
        "burn_tier": tier.name,
        "long_window": tier.long_window,
        "short_window": tier.short_window,
    }


def _alert(plan: _Plan, tier: maths.Tier) -> dict:
    threshold = repr(maths.alert_threshold(tier, plan.definition.objective))
    long_ratio = plan.selector(error_ratio_recording(plan.definition, tier.long_window))
    short_ratio = plan.selector(error_ratio_recording(plan.definition, tier.short_window))
    expr = f"{long_ratio} > {threshold}\nand\n{short_ratio} > {threshold}"
    gate = _gate(plan)
    if gate:
        expr += f"\nand on (slo, organization)\n{gate}"
    return {
        "alert": ALERT,
        "expr": expr,
        "labels": _alert_labels(plan, tier),
        "annotations": {
            key: _template_text(value) for key, value in _annotations(plan, tier).items()
        },
    }


def _annotations(plan: _Plan, tier: maths.Tier) -> dict[str, str]:
    definition = plan.definition
    threshold = maths.alert_threshold(tier, definition.objective)
    what = (
        f"the share of bad {duration(definition.slice_length)} slices"
        if plan.slices
        else "the error ratio"
    )
    annotations = {
        "summary": (
            f"SLO {definition.name} is burning its error budget {tier.factor:.4g} times "
            f"too fast ({tier.long_window} and {tier.short_window})"
        ),
        "description": (
            f"{plan.name}: {what} over the last {tier.long_window} and over the last "
            f"{tier.short_window} both exceed {threshold:.6g}, {tier.factor:.4g} times the "
            f"error budget of {definition.budget:.6g} (objective {definition.objective:g}%). "
            f"At this rate {tier.budget_spent:.0%} of the {definition.window.name} budget "
            f"goes in {tier.long_window}."
        ),
    }
    if plan.runbook_url:
        annotations["runbook_url"] = plan.runbook_url
    return annotations


def _template_text(text: str) -> str:
    # Annotations are Go templates: text of the SLO's own ({{ in a name) stays text.
    return text.replace("{{", '{{ "{{" }}')


def _hours(length: timedelta) -> str:
    return f"{length / timedelta(hours=1):g} h"


class _Dumper(yaml.SafeDumper):
    pass


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


# The test file: scenarios with exactly known error ratios.

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*')
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


@dataclass(frozen=True)
class _Synthetic:
    """A counter series to synthesise: its `promtool` series text and what it counts per
    minute, as a function of the total and bad events of that minute."""

    name: str
    labels: Mapping[str, str]
    counts: str  # "total", "good", "bad"

    @property
    def series(self) -> str:
        return _series_text(self.name, self.labels)


def _parse_selector(selector: str) -> tuple[str, dict[str, str]] | None:
    """(name, {label: value}) of `name{label="value",...}`; None for anything else."""
    selector = selector.strip()
    match = re.fullmatch(rf"({_NAME})?\s*(?:\{{(.*)\}})?", selector, re.DOTALL)
    if match is None:
        return None
    name, body = match.group(1), match.group(2)
    labels = _parse_matchers(body or "")
    if labels is None:
        return None
    if "__name__" in labels:
        if name is not None:
            return None
        name = labels.pop("__name__")
    if not name:
        return None
    return name, labels


def _parse_matchers(body: str) -> dict[str, str] | None:
    labels: dict[str, str] = {}
    body = body.strip().rstrip(",")
    if not body.strip():
        return labels
    for part in _split_matchers(body):
        match = _MATCHER.fullmatch(part)
        if match is None:
            return None
        name, raw = match.groups()
        value = re.sub(r"\\.", lambda m: _ESCAPES.get(m.group(), "\0"), raw)
        if "\0" in value or name in labels:
            return None
        labels[name] = value
    return labels


def _split_matchers(body: str) -> list[str]:
    parts, current, quoted, escaped = [], [], False, False
    for char in body:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _series_text(name: str, labels: Mapping[str, str]) -> str:
    present = {k: v for k, v in sorted(labels.items()) if v != ""}
    if not present:
        return name
    return name + "{" + ",".join(f"{k}={label_value(v)}" for k, v in present.items()) + "}"


def _other(value: str) -> str:
    return f"{value}_other" if value else "other"


def _synthetic_series(definition: Definition) -> list[_Synthetic] | None:
    """Counter series whose sums under the SLI's selectors are the scenario's good (or
    bad) and total events, or None when the selectors are too rich to synthesise."""
    if definition.budgeting != "occurrences":
        return None
    indicator = definition.indicator
    if isinstance(indicator, Latency):
        labels = _parse_matchers(indicator.selector)
        if labels is None or "le" in labels or not re.fullmatch(_NAME, indicator.metric):
            return None
        return [
            _Synthetic(f"{indicator.metric}_bucket", {**labels, "le": indicator.le}, "good"),
            _Synthetic(f"{indicator.metric}_count", labels, "total"),
        ]
    if not isinstance(indicator, Ratio):
        return None
    part, selector = ("good", indicator.good) if indicator.good else ("bad", indicator.bad)
    counted = _parse_selector(selector or "")
    total = _parse_selector(indicator.total)
    if counted is None or total is None:
        return None
    (name, mine), (total_name, totals) = counted, total
    clash = name != total_name or any(k in totals and totals[k] != v for k, v in mine.items())
    if clash:  # no series can match both: one series each
        return [
            _Synthetic(name, mine, part),
            _Synthetic(total_name, totals, "total"),
        ]
    extra = sorted(k for k in mine if k not in totals)
    if not extra:  # every series of the total is also good (or bad): nothing to vary
        return None
    rest = "bad" if part == "good" else "good"
    return [
        _Synthetic(name, {**totals, **mine}, part),
        _Synthetic(name, {**totals, extra[0]: _other(mine[extra[0]])}, rest),
    ]


def _may_read(definition: Definition, series: list[_Synthetic]) -> bool:
    """Whether any query of `definition` could select one of `series`: exactly for a
    plain selector, by the metric name appearing in its text for anything richer."""
    indicator = definition.indicator
    if isinstance(indicator, Ratio):
        texts = [t for t in (indicator.good, indicator.bad, indicator.total) if t]
    elif isinstance(indicator, Latency):
        texts = [
            f"{indicator.metric}_bucket{{{indicator.selector}}}",
            f"{indicator.metric}_count{{{indicator.selector}}}",
        ]
    else:
        texts = [indicator.expr]
    for text in texts:
        parsed = _parse_selector(text)
        for synthetic in series:
            name, labels = synthetic.name, synthetic.labels
            if parsed is None:
                if name in text:
                    return True
            elif parsed[0] == name and all(labels.get(k, "") == v for k, v in parsed[1].items()):
                return True
    return False


@dataclass(frozen=True)
class _Scenario:
    """Events per minute: `rate` in all, `errors` of them bad in minutes (start, stop]."""

    rate: int
    errors: int
    start: int
    stop: int

    def bad(self, minute: int) -> int:
        return self.errors if self.start < minute <= self.stop else 0

    def counted(self, counts: str, minute: int) -> int:
        """What a series counting "total", "good" or "bad" events adds in that minute."""
        if counts == "total":
            return self.rate
        bad = self.bad(minute)
        return bad if counts == "bad" else self.rate - bad

    def cumulative_bad(self, minute: int) -> int:
        return self.errors * max(0, min(minute, self.stop) - self.start)

    def ratio(self, window: int, at: int) -> Fraction:
        """The exact error ratio over [at - window, at] (data start at minute 0, where
        every counter is 0, so Prometheus' increase() is the plain difference)."""
        since = max(0, at - window)
        bad = self.cumulative_bad(at) - self.cumulative_bad(since)
        return Fraction(bad, self.rate * (at - since))

    def events(self, window: int, at: int) -> int:
        """What the gate counts: 5-minute recordings at the 5m steps in (at - window, at]."""
        step = int(RECORDING_STEP / TEST_STEP)
        last = at - at % step
        first = max(step, (at - window) // step * step + step)
        return self.rate * max(0, last - first + step)


def _minutes(length: timedelta) -> int:
    return int(length / TEST_STEP)


_AMBIGUOUS = Fraction(1, 10**9)
_MULTIPLES = (1.9, 2.3, 1.7, 2.7, 1.5)
# Tiers whose long window is at most this many minutes get a full clean window first.
_FULL_HISTORY = 6 * 60


def _verdict(ratio: Fraction, threshold: float) -> bool | None:
    """ratio > threshold, or None where float rounding could decide either way."""
    limit = Fraction(threshold)
    if abs(ratio - limit) <= limit * _AMBIGUOUS:
        return None
    return ratio > limit


def _firing(plan: _Plan, scenario: _Scenario, at: int) -> list[maths.Tier] | None:
    """The tiers whose alert fires at minute `at`; None if any is a toss-up."""
    events = scenario.events(_minutes(plan.window_length), at)
    firing = []
    for tier in plan.tiers:
        threshold = maths.alert_threshold(tier, plan.definition.objective)
        verdicts = [
            _verdict(scenario.ratio(_minutes(BURN_WINDOWS[w]), at), threshold)
            for w in (tier.long_window, tier.short_window)
        ]
        if None in verdicts:
            return None
        if all(verdicts) and events >= plan.definition.min_events:
            firing.append(tier)
    return firing


def _exceeds(plan: _Plan, tier: maths.Tier, scenario: _Scenario, window: str, at: int) -> bool:
    threshold = maths.alert_threshold(tier, plan.definition.objective)
    return scenario.ratio(_minutes(BURN_WINDOWS[window]), at) > Fraction(threshold)


def _counter_test(plan: _Plan, tier: maths.Tier, series: list[_Synthetic]) -> dict:
    threshold = maths.alert_threshold(tier, plan.definition.objective)
    long_, short = (
        _minutes(BURN_WINDOWS[tier.long_window]),
        _minutes(BURN_WINDOWS[tier.short_window]),
    )
    # Errors at about twice the threshold (all events, when that is more than all): the
    # short window exceeds within minutes, the long one about half way through its
    # length. The multiple avoids other tiers' thresholds, where a window's ratio would
    # sit exactly on a threshold and float rounding would decide.
    others = [maths.alert_threshold(t, plan.definition.objective) for t in plan.tiers]
    multiple = next(
        (m for m in _MULTIPLES if all(abs(m * threshold - o) > o / 20 for o in others)),
        _MULTIPLES[0],
    )
    rate = max(10**6, math.ceil(20 / threshold), plan.definition.min_events // 50 + 1)
    errors = min(rate, max(1, round(multiple * threshold * rate)))
    # A service with a clean long window before the errors start; for the day-long
    # tiers a younger one (one short window old), so that promtool's run stays short:
    # the long window is then partial, its ratio errors over all events so far, and it
    # crosses the threshold after the short one (at about twice the errors' start).
    start = long_ if long_ <= _FULL_HISTORY else short
    every = _minutes(TEST_EVALUATION)
    checks: list[tuple[int, str]] = []
    if threshold >= 1:
        # Out of reach: prove it stays quiet with the long window full of errors.
        scenario = _Scenario(rate, rate, start, start + long_)
        checks.append((start + long_, "out of reach, quiet even at 100% errors"))
    else:
        open_ended = _Scenario(rate, errors, start, start + 2 * long_)
        # By start + long_ both windows hold nothing but errors, above the threshold.
        fire = next(
            (
                at
                for at in range(start + every, start + long_ + every, every)
                if tier in (_firing(plan, open_ended, at) or [])
            ),
            None,
        )
        if fire is None:
            raise RuntimeError(f"{plan.name}: no scenario makes the {tier.name} tier fire")
        # The evaluation before the first that fires (skipping any toss-up in between).
        before = next(
            at
            for at in range(fire - every, start - every, -every)
            if _firing(plan, open_ended, at) is not None
        )
        scenario = _Scenario(rate, errors, start, fire)
        only_short = _exceeds(plan, tier, scenario, tier.short_window, before) and not _exceeds(
            plan, tier, scenario, tier.long_window, before
        )
        checks.append((before, "only the short window exceeds: quiet" if only_short else "quiet"))
        checks.append((fire, "both windows exceed: fires"))
        for at in range(fire + short, fire + 2 * short + 1, every):
            if (
                _firing(plan, scenario, at) is not None
                and not _exceeds(plan, tier, scenario, tier.short_window, at)
                and _exceeds(plan, tier, scenario, tier.long_window, at)
            ):
                checks.append((at, "errors stopped, only the long window exceeds: resolved"))
                break
    last = max(at for at, _ in checks)
    # Samples every minute; every 5 minutes for the day-long tiers (still on every
    # window's edges, so increase() stays the plain difference).
    sample = 1 if long_ <= _FULL_HISTORY else every
    inputs = []
    for synthetic in series:
        counted = [scenario.counted(synthetic.counts, m) for m in range(1, last + 1)]
        per_sample = [sum(counted[i : i + sample]) for i in range(0, last, sample)]
        inputs.append({"series": synthetic.series, "values": _counter_values(per_sample)})
    return {
        "name": f"{plan.name} {tier.name} burn rate ({tier.severity} "
        f"{tier.long_window}/{tier.short_window}), from synthetic counters: "
        + "; ".join(f"at {format_duration(TEST_STEP * at)} {why}" for at, why in checks),
        "interval": format_duration(TEST_STEP * sample),
        "input_series": inputs,
        "alert_rule_test": [
            _alert_check(plan, at, _firing(plan, scenario, at) or []) for at, _ in checks
        ],
    }


def _recording_test(plan: _Plan, tier: maths.Tier) -> dict:
    threshold = maths.alert_threshold(tier, plan.definition.objective)
    reachable = threshold < 1
    above = min(2 * threshold, (1 + threshold) / 2) if reachable else 1.0
    below = threshold / 2
    # Minutes: the short window exceeds from 10 to 30, the long one from 20 on.
    short = [below] * 10 + [above] * 20 + [below] * 11
    long_ = [below] * 20 + [above] * 21
    labels = plan.labels
    inputs = [
        {
            "series": _series_text(
                error_ratio_recording(plan.definition, tier.long_window), labels
            ),
            "values": _constant_runs(long_),
        },
        {
            "series": _series_text(
                error_ratio_recording(plan.definition, tier.short_window), labels
            ),
            "values": _constant_runs(short),
        },
    ]
    if plan.definition.min_events > 0:
        gate = SLICES if plan.slices else TOTAL_EVENTS
        inputs.append(
            {
                "series": _series_text(gate, labels),
                "values": _constant_runs([float(plan.definition.min_events)] * 41),
            }
        )
    checks = [
        (15, False, "only the short window exceeds: quiet"),
        (25, reachable, "both windows exceed: fires" if reachable else "out of reach: quiet"),
        (35, False, "only the long window exceeds: resolved"),
    ]
    return {
        "name": f"{plan.name} {tier.name} burn rate ({tier.severity} "
        f"{tier.long_window}/{tier.short_window}), from recorded error ratios: "
        + "; ".join(f"at {at}m {why}" for at, _, why in checks),
        "interval": format_duration(TEST_STEP),
        "input_series": inputs,
        "alert_rule_test": [
            _alert_check(plan, at, [tier] if fires else []) for at, fires, _ in checks
        ],
    }


def _alert_check(plan: _Plan, at: int, firing: list[maths.Tier]) -> dict:
    return {
        "eval_time": format_duration(TEST_STEP * at),
        "alertname": ALERT,
        "exp_alerts": [
            {"exp_labels": _alert_labels(plan, tier), "exp_annotations": _annotations(plan, tier)}
            for tier in firing
        ],
    }


def _counter_values(per_minute: list[int]) -> str:
    """promtool's expanding notation for a counter from 0 at minute 0 adding
    `per_minute[m - 1]` at minute m."""
    parts = []
    value = 0
    runs = _runs(per_minute)
    for index, (step, count) in enumerate(runs):
        if index == 0:
            parts.append(f"0+{step}x{count}")
        else:
            parts.append(f"{value + step}+{step}x{count - 1}")
        value += step * count
    return " ".join(parts) if parts else "0"


def _constant_runs(values: list[float]) -> str:
    """promtool's notation for a gauge taking these values, one a minute from minute 0."""
    return " ".join(f"{value!r}+0x{count - 1}" for value, count in _runs(values))


def _runs(values: list) -> list[tuple]:
    runs: list[list] = []
    for value in values:
        if runs and runs[-1][0] == value:
            runs[-1][1] += 1
        else:
            runs.append([value, 1])
    return [(value, count) for value, count in runs]
