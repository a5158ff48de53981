"""The SLO pages: the status board of every SLO, and one SLO with its budget chart.

Both read what the evaluator last wrote (`SLOEvaluation`) and its history
(`SLOSnapshot`); neither asks Prometheus anything, so a page costs a few queries
whatever the number of SLOs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.db.models import F, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from controlplane.alerting.models import Alert
from controlplane.catalog import tenancy
from controlplane.catalog.models import Service
from controlplane.slo import chart, maths, objectives, windows
from controlplane.slo.alerts import RUNBOOK
from controlplane.slo.definition import BURN_WINDOWS, CALENDAR
from controlplane.slo.definition import Window as WindowSpec
from controlplane.slo.models import SLO, SLOEvaluation, SLOSnapshot, format_le
from controlplane.trace_links import trace_url
from runbooks import visibility
from runbooks.models import Runbook

# The board shows this many SLOs at most (worst first by default); the API lists all.
BOARD_LIMIT = 1000
# The burn rate the board shows: the fast page tier's long window.
BOARD_BURN = "1h"

Status = SLOEvaluation.Status

# Each status reads as a word and a symbol as well as a colour (CSS: .slo-status-<status>),
# so the board reads in grey print and to colour-blind eyes alike.
STATUS_WORDS = {
    Status.OK: ("ok", "\u2713"),  # check mark
    Status.WARNING: ("warning", "\u25b2"),  # triangle
    Status.BREACHING: ("breaching", "\u2716"),  # heavy cross
    Status.EXHAUSTED: ("exhausted", "\u2298"),  # circled slash
    Status.INSUFFICIENT_TRAFFIC: ("insufficient traffic", "\u25cc"),  # dotted circle
    Status.NO_DATA: ("no data", "?"),
    Status.PENDING: ("pending", "\u2026"),  # ellipsis
}

SORTS = {
    "budget": "budget remaining, worst first",
    "name": "name",
}


@dataclass(frozen=True)
class StatusShown:
    value: str
    word: str
    symbol: str
    label: str  # the long label, for a tooltip


def status_shown(value: str) -> StatusShown:
    status = Status(value) if value in Status.values else Status.PENDING
    word, symbol = STATUS_WORDS[status]
    return StatusShown(status.value, word, symbol, status.label)


# --- numbers as the pages write them ----------------------------------------------------


def _floored(value: float, places: int) -> str:
    """`value` with `places` decimals, rounded down: a page never shows an SLI as
    meeting its objective, nor a budget as left, when it is not. Decimal of the float's
    shortest repr, so 0.999 is 99.9 %, not 99.89999 %."""
    quantum = Decimal(1).scaleb(-places)
    return str(Decimal(repr(value)).quantize(quantum, rounding=ROUND_FLOOR))


def _signed(text: str) -> str:
    return "\u2212" + text[1:] if text.startswith("-") else text


def objective_text(objective: float) -> str:
    return f"{objective:g}%"


def _places(objective: float) -> int:
    """Decimals enough to compare an SLI with its objective: one more than it has."""
    digits = f"{objective:g}"
    return (len(digits.split(".")[1]) if "." in digits else 0) + 1


def sli_text(sli: float | None, objective: float) -> str:
    if sli is None or not math.isfinite(sli):
        return "\u2014"
    return _floored(sli * 100, max(2, _places(objective))) + "%"


def budget_text(remaining: float | None) -> str:
    if remaining is None or not math.isfinite(remaining):
        return "\u2014"
    return _signed(_floored(remaining * 100, 1)) + "%"


def burn_text(burn: float | None) -> str:
    """A burn rate as a multiple of the even pace, with a multiplication sign: 0.42, 14.4,
    1230 (two decimals below 10, one below 1000, none above)."""
    if burn is None:
        return "\u2014"
    if not math.isfinite(burn):
        return "\u221e\u00d7" if burn > 0 else "\u2014"
    if burn < 10:
        return f"{burn:.2f}\u00d7"
    if burn < 1000:
        return f"{burn:.1f}\u00d7"
    return f"{burn:.0f}\u00d7"


def factor_text(factor: float) -> str:
    return f"{factor:.4g}\u00d7"


def duration_text(length: timedelta | None) -> str:
    """'3 d 4 h', '5 h 12 min', '40 min', '< 1 min'."""
    if length is None:
        return "\u2014"
    minutes = int(length.total_seconds() // 60)
    if minutes < 1:
        return "< 1 min"
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def exhaustion_text(evaluation: SLOEvaluation | None) -> str:
    if evaluation is None or evaluation.budget_remaining is None:
        return "\u2014"
    if evaluation.budget_remaining <= 0:
        return "spent"
    if evaluation.time_to_exhaustion is None:
        return "not at the current burn rate"
    return duration_text(evaluation.time_to_exhaustion)


def current_text(slo: SLO, evaluation: SLOEvaluation | None) -> str:
    """What an RPO or RTO measures now (objectives.py), in words; empty for other kinds."""
    if slo.kind not in objectives.KINDS or evaluation is None or evaluation.evaluated_at is None:
        return ""
    value = evaluation.current_value
    if value is None or not math.isfinite(value):
        return "no good backup yet" if slo.kind == SLO.Kind.RPO else "no restore in the window"
    length = duration_text(timedelta(seconds=value))
    return (
        f"last good backup {length} ago"
        if slo.kind == SLO.Kind.RPO
        else f"longest restore {length}"
    )


def _number(value: object) -> float | None:
    """A burn rate as stored in JSON: a number, or None (no traffic)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


# --- what the reader may see --------------------------------------------------------------


def _visible(request: HttpRequest) -> QuerySet:
    return tenancy.scope(SLO.objects.all(), tenancy.organization_ids(request.user))


def _several_organizations(request: HttpRequest) -> bool:
    """Slugs are unique per organisation only: links then name the organisation."""
    allowed = tenancy.organization_ids(request.user)
    return allowed is None or len(allowed) > 1


def _evaluation_of(slo: SLO) -> SLOEvaluation | None:
    try:
        return slo.evaluation
    except SLOEvaluation.DoesNotExist:
        return None


def detail_url(slo: SLO, name_organization: bool) -> str:
    url = slo.get_absolute_url()
    if name_organization:
        url += "?" + urlencode({"organization": slo.organization.slug})
    return url


# --- the board -------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    slo: SLO
    url: str
    status: StatusShown
    objective: str
    sli: str
    budget: str
    burn: str
    evaluated_at: datetime | None
    current: str = ""  # RPO and RTO: the backup age or the longest restore


def board_row(slo: SLO, url: str) -> Row:
    evaluation = _evaluation_of(slo)
    rates = evaluation.burn_rates if evaluation is not None else {}
    return Row(
        slo=slo,
        url=url,
        status=status_shown(evaluation.status if evaluation else Status.PENDING),
        objective=objective_text(slo.objective),
        sli=sli_text(evaluation.sli if evaluation else None, slo.objective),
        budget=budget_text(evaluation.budget_remaining if evaluation else None),
        burn=burn_text(_number((rates or {}).get(BOARD_BURN))),
        evaluated_at=evaluation.evaluated_at if evaluation else None,
        current=current_text(slo, evaluation),
    )


def _board_filters(request: HttpRequest) -> dict[str, str]:
    wanted = {name: request.GET.get(name, "").strip() for name in ("service", "status", "sort")}
    if wanted["status"] not in Status.values:
        wanted["status"] = ""
    if wanted["sort"] not in SORTS:
        wanted["sort"] = ""
    return wanted


def _query(filters: dict[str, str], **changes: str) -> str:
    merged = {**filters, **changes}
    return urlencode({name: value for name, value in merged.items() if value})


@login_required
def board(request: HttpRequest) -> HttpResponse:
    filters = _board_filters(request)
    slos = _visible(request).select_related("organization", "service", "evaluation")
    if filters["service"]:
        slos = slos.filter(service__slug=filters["service"])
    if filters["status"] == Status.PENDING:
        slos = slos.filter(Q(evaluation__isnull=True) | Q(evaluation__status=Status.PENDING))
    elif filters["status"]:
        slos = slos.filter(evaluation__status=filters["status"])
    if filters["sort"] == "name":
        slos = slos.order_by("name", "organization__slug", "slug")
    else:
        # Worst first; never evaluated (no budget yet) last.
        slos = slos.order_by(
            F("evaluation__budget_remaining").asc(nulls_last=True),
            "name",
            "organization__slug",
            "slug",
        )
    found = list(slos[: BOARD_LIMIT + 1])
    several = _several_organizations(request)
    rows = [board_row(slo, detail_url(slo, several)) for slo in found[:BOARD_LIMIT]]

    services = (
        tenancy.scope(
            Service.objects.filter(slos__isnull=False), tenancy.organization_ids(request.user)
        )
        .order_by("slug")
        .values_list("slug", flat=True)
        .distinct()
    )
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status.value] = counts.get(row.status.value, 0) + 1
    context = {
        "rows": rows,
        "more": len(found) > BOARD_LIMIT,
        "limit": BOARD_LIMIT,
        "filters": filters,
        "filtered": bool(filters["service"] or filters["status"]),
        "statuses": [status_shown(value) for value in Status.values],
        "counts": [
            (status_shown(value), counts[value]) for value in Status.values if value in counts
        ],
        "services": list(services),
        "sorts": SORTS,
        "sort": filters["sort"] or "budget",
        "sort_by_budget": _query(filters, sort=""),
        "sort_by_name": _query(filters, sort="name"),
        "several": several,
        "board_burn": BOARD_BURN,
    }
    return render(request, "slo/board.html", context)


# --- one SLO ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TierRow:
    """One burn-rate tier as the page shows it."""

    tier: maths.Tier
    factor: str
    long_burn: str
    short_burn: str
    long_over: bool
    short_over: bool
    enabled: bool

    @property
    def holds(self) -> bool:
        return self.long_over and self.short_over


def tier_rows(slo: SLO, length: timedelta, rates: dict) -> list[TierRow]:
    """The four tiers with their factor for this window length, and whether each of
    their windows burns above it now (as measured: display only; the evaluator decides
    on error ratios, see maths.holds)."""
    found = []
    for tier in maths.tiers(length):
        long_burn = _number(rates.get(tier.long_window))
        short_burn = _number(rates.get(tier.short_window))
        found.append(
            TierRow(
                tier=tier,
                factor=factor_text(tier.factor),
                long_burn=burn_text(long_burn),
                short_burn=burn_text(short_burn),
                long_over=long_burn is not None and long_burn > tier.factor,
                short_over=short_burn is not None and short_burn > tier.factor,
                enabled=slo.page if tier.severity == "page" else slo.ticket,
            )
        )
    return found


def _named(request: HttpRequest, slug: str) -> tuple[SLO, list[SLO]]:
    """The SLO of that slug among the reader's organisations (?organization=<slug>
    names one when several have it), and the others of that slug the reader sees."""
    found = list(
        _visible(request)
        .filter(slug=slug)
        .select_related(
            "organization", "service", "source", "runbook", "escalation_policy", "evaluation"
        )
        .order_by("organization__slug")
    )
    wanted = request.GET.get("organization", "")
    chosen = next((s for s in found if not wanted or s.organization.slug == wanted), None)
    if chosen is None:
        # Another organisation's SLO is not found either: its slug does not leak.
        raise Http404("No such SLO.")
    return chosen, [s for s in found if s.pk != chosen.pk]


def chart_bounds(
    slo: SLO, evaluation: SLOEvaluation | None, now: datetime
) -> tuple[datetime, datetime, datetime]:
    """The stretch the chart spans, and the time it is read at: the last evaluation's
    (or now). A calendar SLO spans that time's whole period, a rolling one the window
    ending at it."""
    window = WindowSpec.named(slo.window, slo.time_zone)
    at = (evaluation.window_end or evaluation.evaluated_at) if evaluation else None
    at = at or now
    if window.period is not None:
        return (*windows.period_bounds(window.period, window.time_zone, at), at)
    return at - (window.length or timedelta(0)), at, at


def sli_queries(slo: SLO) -> list[tuple[str, str]]:
    """What the SLI counts, as the SLO names it: (what, PromQL)."""
    if slo.kind == SLO.Kind.LATENCY:
        le = slo.bucket_le or format_le(float(slo.threshold or 0))
        inside = ", ".join(part for part in (slo.selector.strip(), f'le="{le}"') if part)
        return [
            (f"Good: at most {slo.threshold:g} s", f"{slo.metric}_bucket{{{inside}}}"),
            ("All requests", f"{slo.metric}_count{{{slo.selector.strip()}}}"),
        ]
    if slo.kind == SLO.Kind.THRESHOLD:
        return [("A slice is good when", f"{slo.expr} {slo.op} {slo.threshold:g}")]
    if slo.kind in objectives.KINDS:
        target = duration_text(objectives.target_of(slo))
        job = slo.job.slug if slo.job_id else "none"
        if slo.kind == SLO.Kind.RPO:
            return [
                ("Backup monitor", job),
                ("A slice is good when", f"its last success finished less than {target} before"),
            ]
        return [
            ("Restore-drill monitor", job),
            ("Incidents", "critical alerts of " + (", ".join(slo.incident_services) or "none")),
            ("A restore is good when", f"it took at most {target}"),
        ]
    first = ("Good events", slo.good) if slo.good else ("Bad events", slo.bad)
    return [first, ("All events", slo.total)]


def budgeting_text(slo: SLO) -> str:
    if slo.budgeting != SLO.Budgeting.TIMESLICES:
        return "occurrences: good events out of all events"
    text = f"time slices of {duration_text(slo.slice_length)}: good slices out of all slices"
    if slo.kind != SLO.Kind.THRESHOLD and slo.slice_target is not None:
        text += f"; a slice is good at {slo.slice_target * 100:g}% good events or more"
    return text


def _runbook(request: HttpRequest, slo: SLO) -> tuple[Runbook | None, str]:
    """The SLO's runbook, or the shared `slo-burn-rate` one (its title when loaded)."""
    if slo.runbook_id:
        return slo.runbook, slo.runbook.get_absolute_url()
    # RPO and RTO alerts link the runbook that describes them (alerts.runbook_url).
    slug = objectives.RUNBOOK if slo.kind in objectives.KINDS else RUNBOOK
    runbook = visibility.resolve(request.user, slug)
    return runbook, reverse("runbooks:page", args=[slug])


@login_required
def detail(request: HttpRequest, slug: str) -> HttpResponse:
    slo, elsewhere = _named(request, slug)
    evaluation = _evaluation_of(slo)
    now = timezone.now()
    window = WindowSpec.named(slo.window, slo.time_zone)
    start, end, read_at = chart_bounds(slo, evaluation, now)
    length = windows.window_length(window, start)
    zone = windows.zone(slo.time_zone)
    snapshots = list(
        SLOSnapshot.objects.filter(slo=slo, at__gte=start, at__lte=end)
        .order_by("at")
        .values_list("at", "budget_remaining")
    )
    drawn = chart.budget_chart(snapshots, start, end, zone)
    measured = [(at, value) for at, value in snapshots if value is not None]
    rates = (evaluation.burn_rates or {}) if evaluation else {}
    alerts = list(
        Alert.objects.filter(slo=slo).exclude(state=Alert.State.RESOLVED).order_by("-started_at")
    )
    runbook, runbook_url = _runbook(request, slo)
    context = {
        "slo": slo,
        "evaluation": evaluation,
        "status": status_shown(evaluation.status if evaluation else Status.PENDING),
        "objective": objective_text(slo.objective),
        "error_budget": f"{100 - slo.objective:.6g}%",
        "sli": sli_text(evaluation.sli if evaluation else None, slo.objective),
        "budget": budget_text(evaluation.budget_remaining if evaluation else None),
        "exhaustion": exhaustion_text(evaluation),
        "current": current_text(slo, evaluation),
        "queries": sli_queries(slo),
        "budgeting": budgeting_text(slo),
        "calendar": slo.window in CALENDAR,
        "window_length": duration_text(length),
        "period": (start, end),
        "burn_rates": [(name, burn_text(_number(rates.get(name)))) for name in BURN_WINDOWS],
        "tiers": tier_rows(slo, length, rates),
        "alerts": alerts,
        "runbook": runbook,
        "runbook_url": runbook_url,
        "trace_url": trace_url(evaluation.trace_id) if evaluation else "",
        "chart": drawn,
        "chart_from": (measured[0][0], budget_text(measured[0][1])) if measured else None,
        "chart_to": (measured[-1][0], budget_text(measured[-1][1])) if measured else None,
        # Where an even spend would stand at the last evaluation: meaningful for a
        # calendar period only (a rolling window always ends at its evaluation).
        "ideal_now": budget_text(maths.ideal_remaining(start, end, read_at))
        if slo.window in CALENDAR
        else "",
        "elsewhere": [(other, detail_url(other, True)) for other in elsewhere],
        "board_url": reverse("slos:board"),
    }
    return render(request, "slo/detail.html", context)
