"""SLO dashboards: one over every SLO (the `organization` and `slo` variables) and one
per SLO with its objective, window, tiers and low-traffic minimum baked in.

Both read the series the exported recording rules write (controlplane/slo/rules.py):
the 5-minute event recordings or the slice counts, and the error ratios of the burn
windows. The overview reads the objective, error budget and low-traffic minimum of the
picked SLO from the rules' meta recordings (slo:objective:ratio, ...), so that nobody
types them; its rolling window stays a choice, as a PromQL range cannot come from a
series. The per-SLO dashboard also charts the SLI from the raw series, with the
query the control plane's own evaluation builds (controlplane/slo/queries.py).

Calendar windows: PromQL has no calendar and counts in UTC. The calendar panels use
Grafana's "this month/week so far" (now/M, now/w) on a UTC dashboard, the budget
over that range as an instant query and the ideal burn-down line from
day_of_month() / days_in_month() (or the weekday, weeks starting on Monday). A
quarter is shown month by month, and an SLO in another time zone is off by its UTC
offset at the period's edges: its page on the control plane (/slos/<slug>/) draws the
window in its own time zone. The rolling panels of a calendar SLO use the length of
the period current at export, as the rule export does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from controlplane.dashboards import grafana
from controlplane.dashboards.grafana import query
from controlplane.slo import maths, queries, rules, windows
from controlplane.slo.definition import INTERNAL, ROLLING, Definition, Threshold

UID = "controlplane-slos"
TITLE = "SLOs"
SLO_UID_PREFIX = "slo"
EVENTS = (queries.GOOD_EVENTS, queries.TOTAL_EVENTS)
SLICES = (rules.GOOD_SLICES, rules.SLICES)
# The shared panels fill three lines of two: the per-SLO panel goes below them.
_PANELS_HEIGHT = 24
RECORDING_SECONDS = int(queries.RECORDING_STEP.total_seconds())

# The ideal share of the budget left at the current instant of the period (UTC).
_SECONDS_INTO_DAY = "hour() * 3600 + minute() * 60"
IDEAL = {
    "month": (
        f"1 - ((day_of_month() - 1) * 86400 + {_SECONDS_INTO_DAY}) / (days_in_month() * 86400)"
    ),
    "week": f"1 - (((day_of_week() + 6) % 7) * 86400 + {_SECONDS_INTO_DAY}) / 604800",
}
# Grafana's "so far" ranges: this month / this week up to now.
SO_FAR = {"month": "now/M", "week": "now/w"}


@dataclass(frozen=True)
class _Scope:
    """What the panels of one dashboard read: selectors for the recordings, the window
    as PromQL range text (a duration, or a dashboard variable), and the objective,
    budget and minimum as PromQL scalar text (a number, or a recorded series')."""

    matchers: str
    budgeting: str  # "occurrences", "timeslices", or "either" (the overview)
    window: str
    objective: str  # a fraction (0.999)
    budget: str  # maths.error_budget's float: never recomputed from the objective
    min_events: str

    def selector(self, name: str) -> str:
        return f"{name}{{{self.matchers}}}"

    def counted(self, good: bool, range_: str) -> str:
        """sum(sum_over_time(...)) of the good (or all) events or slices over range_."""
        index = 0 if good else 1
        kinds = {"occurrences": [EVENTS], "timeslices": [SLICES], "either": [EVENTS, SLICES]}
        parts = [
            f"sum(sum_over_time({self.selector(names[index])}[{range_}]))"
            for names in kinds[self.budgeting]
        ]
        return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"

    def sli(self, range_: str) -> str:
        return f"{self.counted(True, range_)}\n/\n{self.counted(False, range_)}"

    def remaining(self, range_: str) -> str:
        return f"1 - (1 - ({self.sli(range_)})) / {self.budget}"

    def error_ratio(self, window: str) -> str:
        names = {
            "occurrences": [f"slo:sli_error:ratio_increase{window}"],
            "timeslices": [f"slo:sli_error:ratio_slices{window}"],
            "either": [
                f"slo:sli_error:ratio_increase{window}",
                f"slo:sli_error:ratio_slices{window}",
            ],
        }[self.budgeting]
        found = [f"max({self.selector(name)})" for name in names]
        return found[0] if len(found) == 1 else "(" + " or ".join(found) + ")"


def build_overview() -> dict[str, Any]:
    """The SLOs dashboard: any SLO whose rules Prometheus loads, picked by variable."""
    matchers = 'slo=~"$slo",organization=~"$organization"'

    def recorded_value(name: str) -> str:
        # One number per step whatever the labels (an edit changes slo_revision).
        return f"scalar(max({name}{{{matchers}}}))"

    scope = _Scope(
        matchers=matchers,
        budgeting="either",
        window="$window",
        objective=recorded_value(rules.OBJECTIVE),
        budget=recorded_value(rules.ERROR_BUDGET),
        min_events=recorded_value(rules.MIN_EVENTS),
    )
    board = grafana.new_dashboard(
        UID,
        TITLE,
        "Any SLO whose recording rules Prometheus loads (manage.py export_prometheus_rules): "
        "its objective, error budget and low-traffic minimum come from the rules' "
        "slo:objective:ratio, slo:error_budget:ratio and slo:min_events:count. Pick the rolling "
        "window; the SLO's own dashboard (manage.py export_grafana_dashboards) has its window "
        "and alert thresholds baked in.",
        time_zone="utc",
    )
    # Occurrence SLOs record 5-minute events, time-slice SLOs slices: either names an SLO.
    recorded = f'__name__=~"{queries.TOTAL_EVENTS}|{rules.SLICES}"'
    board = board.with_variable(
        grafana.label_variable("organization", "organization", "", matchers=recorded, multi=False)
    )
    board = board.with_variable(
        grafana.label_variable(
            "slo",
            "slo",
            "",
            matchers=f'{recorded},organization=~"$organization"',
            multi=False,
        ).label("SLO")
    )
    board = board.with_variable(
        grafana.custom_variable("window", "Rolling window", list(ROLLING), "30d")
    )
    for annotation in grafana.annotations():
        board = board.annotation(annotation)
    tiers = maths.tiers(ROLLING["30d"])
    board = _panels(board, scope, tiers=tiers, tier_thresholds=False, period="month")
    return grafana.render(board)


def slo_uid(organization: str, slug: str) -> str:
    """The SLO dashboard's uid, from the organisation and SLO slugs (never database ids)."""
    return grafana.stable_uid(SLO_UID_PREFIX, organization, slug)


def exported(definition: Definition) -> bool:
    """Whether Prometheus measures this SLO (RPO and RTO are measured by the control plane)."""
    return not isinstance(definition.indicator, INTERNAL)


def build_slo(
    organization: str, definition: Definition, at: datetime, *, site_url: str = ""
) -> dict[str, Any]:
    """The dashboard of one SLO as its definition stands at `at` (calendar windows use
    the period current then). ValueError when the SLO's queries cannot be built or a
    query is malformed (a row written past validation): the message names the SLO."""
    name = f"{organization}/{definition.slug}"
    if not exported(definition):
        raise ValueError(
            f"SLO {name}: an {type(definition.indicator).__name__.upper()} "
            "objective is measured by the control plane, not by Prometheus"
        )
    try:
        board = _slo_board(organization, definition, at, site_url)
        doc = grafana.render(board)
        for panel in grafana.panels(doc):
            for target in panel.get("targets", []):
                problem = grafana.malformed(target.get("expr", ""))
                if problem:
                    raise ValueError(f"panel {panel['title']!r}: {problem}")
    except ValueError as error:
        raise ValueError(f"SLO {name}: {error}") from None
    return doc


def _slo_board(organization: str, definition: Definition, at: datetime, site_url: str):
    slices = definition.budgeting == "timeslices"
    length = windows.window_length(definition.window, at)
    scope = _Scope(
        matchers=(
            f"slo={queries.label_value(definition.slug)},"
            f"organization={queries.label_value(organization)}"
        ),
        budgeting=definition.budgeting,
        window=queries.open_range(length),
        objective=queries.number(rules.objective_ratio(definition.objective)),
        # maths.error_budget's float, as the exported alerts compare against it.
        budget=queries.number(definition.budget),
        min_events=str(int(definition.min_events)),
    )
    period = definition.window.period or "month"
    time_zone = definition.window.time_zone
    window_text = definition.window.name + (
        f" in {time_zone}" if definition.window.period and time_zone != "UTC" else ""
    )
    board = grafana.new_dashboard(
        slo_uid(organization, definition.slug),
        f"SLO: {definition.name} ({organization})",
        f"{definition.name}: {definition.objective:g}% over {window_text}"
        + (f", at least {definition.min_events} events" if definition.min_events else "")
        + ". Generated by manage.py export_grafana_dashboards; export again after editing the SLO.",
        tags=["slo", organization],
        time_zone="utc",
    )
    if site_url:
        url = f"{site_url.rstrip('/')}/slos/{definition.slug}/?" + urlencode(
            {"organization": organization}
        )
        board = board.link(
            grafana.dashboard.DashboardLink("The SLO on the control plane")
            .type(grafana.models.DashboardLinkType.LINK)
            .url(url)
            .target_blank(True)
        )
    for annotation in grafana.annotations([("slo", definition.slug)]):
        board = board.annotation(annotation)
    enabled = tuple(
        tier
        for tier in maths.tiers(length, definition.slice_length if slices else None)
        if (definition.page if tier.severity == "page" else definition.ticket)
    )
    board = _panels(
        board,
        scope,
        tiers=enabled,
        tier_thresholds=True,
        period=period if period in IDEAL else "month",
    )
    raw = _raw_sli(definition)
    board = board.with_panel(
        grafana.series_panel(
            "SLI from the raw series",
            "The SLI over each slice (time slices) or each rate interval, from the SLO's own "
            "query as the control plane's evaluation builds it: it reads the raw series, not "
            "the recordings.",
            [
                query(raw, "SLI"),
                query(f"vector({queries.number(1 - definition.budget)})", "objective"),
            ],
            unit="percentunit",
        ).grid_pos(grafana.models.GridPos(h=8, w=24, x=0, y=_PANELS_HEIGHT))
    )
    return board


def _raw_sli(definition: Definition) -> str:
    indicator = definition.indicator
    if isinstance(indicator, Threshold) or definition.budgeting == "timeslices":
        return queries.slice_good(definition)
    return f"1 - (\n{queries.error_ratio(indicator, '$__rate_interval')}\n)"


def _panels(
    board,
    scope: _Scope,
    *,
    tiers: tuple[maths.Tier, ...],
    tier_thresholds: bool,
    period: str,
):
    grid = grafana.Grid()
    objective = f"vector({scope.objective})"
    board = board.with_panel(
        grid.place(
            grafana.series_panel(
                "SLI against the objective",
                "The SLI over the rolling window (good events or slices over all), against "
                "the objective.",
                [query(scope.sli(scope.window), "SLI"), query(objective, "objective")],
                unit="percentunit",
            )
        )
    )
    board = board.with_panel(
        grid.place(
            grafana.series_panel(
                "Error budget remaining over the rolling window",
                "1 - (1 - SLI) / (1 - objective) over the rolling window: 1 is untouched, "
                "0 spent, below 0 overspent.",
                [query(scope.remaining(scope.window), "remaining")],
                unit="percentunit",
            )
        )
    )
    board = board.with_panel(
        grid.place(
            grafana.series_panel(
                f"Error budget this calendar {period} with the ideal burn-down",
                f"The {period} so far in UTC (PromQL has no calendar): the budget remaining "
                "now (the point) against the ideal line, a budget spent evenly over the "
                f"{period}. The control plane's SLO page draws the window in the SLO's own "
                "time zone.",
                [
                    query(scope.remaining("$__range"), "remaining now", instant=True),
                    query(IDEAL[period], "ideal"),
                ],
                unit="percentunit",
                time_from=SO_FAR[period],
            )
        )
    )
    burn = []
    windows_used = [w for w in _burn_windows(tiers)]
    for window in windows_used:
        burn.append(query(f"{scope.error_ratio(window)} / {scope.budget}", f"{window} window"))
    if tier_thresholds:
        for tier in tiers:
            burn.append(
                query(
                    f"vector({tier.factor!r})",
                    f"{tier.name} {tier.severity} threshold "
                    f"({tier.long_window}/{tier.short_window})",
                )
            )
    board = board.with_panel(
        grid.place(
            grafana.series_panel(
                "Burn rate per tier",
                "Each burn window's recorded error ratio divided by the error budget; a tier "
                "alerts when both its long and short windows exceed its threshold.",
                burn,
            )
        )
    )
    if scope.budgeting == "timeslices":
        rate = f"sum({scope.selector(rules.SLICES)})"
        unit_text = "slices measured per slice"
    elif scope.budgeting == "occurrences":
        rate = f"sum({scope.selector(queries.TOTAL_EVENTS)}) / {RECORDING_SECONDS}"
        unit_text = "events per second"
    else:
        rate = (
            f"(sum({scope.selector(queries.TOTAL_EVENTS)}) / {RECORDING_SECONDS}"
            f" or sum({scope.selector(rules.SLICES)}))"
        )
        unit_text = "events per second (slices per slice for time slices)"
    board = board.with_panel(
        grid.place(
            grafana.series_panel(
                "Event rate",
                f"Traffic the SLO counts, in {unit_text}, from the 5-minute recordings.",
                [query(rate, "rate")],
            )
        )
    )
    board = board.with_panel(
        grid.place(
            grafana.series_panel(
                "Events in the window against the low-traffic minimum",
                "Events (or slices) in the rolling window: below the minimum, burn-rate "
                "alerts stay quiet and the status reads low traffic.",
                [
                    query(scope.counted(False, scope.window), "events in the window"),
                    query(f"vector({scope.min_events})", "minimum"),
                ],
            )
        )
    )
    return board


def _burn_windows(tiers: tuple[maths.Tier, ...]) -> list[str]:
    used = {w for tier in tiers for w in (tier.long_window, tier.short_window)}
    return [w for w in queries.BURN_WINDOWS if w in used]
