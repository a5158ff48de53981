"""The job pages: every monitor with its status and its recent runs, and one monitor with
its runs, its ping URLs and its runbook.

Both read what pings and the overdue check last wrote (`JobMonitorState`, `JobRun`);
the list costs the same few queries for 3 monitors as for 1,000: the monitors with
their state in one, the recent runs of all of them in another (a window function
keeps each monitor's latest few).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Case, F, IntegerField, Q, QuerySet, Value, When, Window
from django.db.models.functions import RowNumber
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from controlplane.catalog import tenancy
from controlplane.jobs.forms import schedule_words
from controlplane.jobs.models import JobMonitor, JobMonitorState, JobRun
from controlplane.trace_links import trace_url
from runbooks import visibility
from runbooks.models import Runbook

# The list shows this many monitors at most (worst first); the API lists all.
LIST_LIMIT = 1000
# Runs in a monitor's strip on the list, and in the table of its page.
STRIP_RUNS = 20
RUNS_SHOWN = 50
# The shared runbook of a monitor that names none: the built-in rule's.
RUNBOOK = "etl-job-failure"

Status = JobMonitorState.Status
Outcome = JobRun.Outcome
RUNNING = "running"  # a run with no outcome yet

# Each status and outcome reads as a word and a symbol as well as a colour (CSS:
# .job-status-<status>, .job-run-<outcome>), so the pages read in grey print and to
# colour-blind eyes alike.
STATUS_WORDS = {
    Status.NEW: ("new", "\u25cc"),  # dotted circle
    Status.UP: ("up", "\u2713"),  # check mark
    Status.RUNNING: ("running", "\u21bb"),  # clockwise arrow
    Status.LATE: ("late", "\u25b2"),  # triangle
    Status.FAILED: ("failed", "\u2716"),  # heavy cross
    Status.PAUSED: ("paused", "\u2016"),  # double bar
}
OUTCOME_WORDS = {
    Outcome.SUCCESS: ("success", "\u2713"),  # check mark
    Outcome.FAILURE: ("failure", "\u2716"),  # heavy cross
    Outcome.TIMEOUT: ("timed out", "\u25f7"),  # clock
    Outcome.TOO_FAST: ("too fast", "\u00bb"),  # double chevron
    Outcome.MISSED: ("missed", "\u25cb"),  # empty circle: nothing ran
    RUNNING: ("running", "\u21bb"),  # clockwise arrow
}
OUTCOME_LABELS = {**dict(Outcome.choices), RUNNING: "Running (no finish reported yet)"}
# Worst first on the list.
STATUS_ORDER = [Status.FAILED, Status.LATE, Status.RUNNING, Status.NEW, Status.UP, Status.PAUSED]


@dataclass(frozen=True)
class Shown:
    value: str
    word: str
    symbol: str
    label: str  # the long label, for a tooltip


def status_shown(value: str) -> Shown:
    status = Status(value) if value in Status.values else Status.NEW
    word, symbol = STATUS_WORDS[status]
    return Shown(status.value, word, symbol, status.label)


def outcome_shown(value: str) -> Shown:
    outcome = value if value in Outcome.values else RUNNING
    word, symbol = OUTCOME_WORDS[outcome]
    return Shown(outcome, word, symbol, OUTCOME_LABELS[outcome])


def duration_text(length: timedelta | None) -> str:
    """'1.2 s', '4 min 3 s', '2 h 5 min', '3 d 4 h'."""
    if length is None:
        return "\u2014"
    seconds = length.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def limits_text(shortest: timedelta | None, longest: timedelta | None) -> str:
    """A monitor's run durations in words: 'at least 1 min, at most 2 h', 'no limits'."""
    parts = []
    if shortest is not None:
        parts.append(f"at least {duration_text(shortest)}")
    if longest is not None:
        parts.append(f"at most {duration_text(longest)}")
    return ", ".join(parts) or "no limits"


def moment_text(at: datetime | None) -> str:
    if at is None:
        return "\u2014"
    local = timezone.localtime(at)
    return f"{local.day} {local:%b %H:%M %Z}"


@dataclass(frozen=True)
class RunShown:
    run: JobRun
    outcome: Shown
    duration: str
    title: str  # the whole run in a sentence, for the strip's tooltip
    trace_url: str


def run_shown(run: JobRun) -> RunShown:
    outcome = outcome_shown(run.outcome)
    at = run.started_at or run.finished_at or run.created_at
    parts = [outcome.word, moment_text(at)]
    if run.duration is not None:
        parts.append(duration_text(run.duration))
    if run.exit_code is not None:
        parts.append(f"exit {run.exit_code}")
    if run.too_early:
        parts.append("started early")
    return RunShown(
        run=run,
        outcome=outcome,
        duration=duration_text(run.duration),
        title=" \u00b7 ".join(parts),
        trace_url=trace_url(run.trace_id),
    )


# --- what the reader may see --------------------------------------------------------------


def _visible(request: HttpRequest) -> QuerySet:
    return tenancy.scope(JobMonitor.objects.all(), tenancy.organization_ids(request.user))


def _several_organizations(request: HttpRequest) -> bool:
    """Slugs are unique per organisation only: links then name the organisation."""
    allowed = tenancy.organization_ids(request.user)
    return allowed is None or len(allowed) > 1


def _state_of(monitor: JobMonitor) -> JobMonitorState | None:
    try:
        return monitor.state
    except JobMonitorState.DoesNotExist:
        return None


def detail_url(monitor: JobMonitor, name_organization: bool) -> str:
    url = monitor.get_absolute_url()
    if name_organization:
        url += "?" + urlencode({"organization": monitor.organization.slug})
    return url


# --- the list ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    monitor: JobMonitor
    url: str
    status: Shown
    schedule: str
    last_run: RunShown | None
    next_expected: datetime | None
    overdue: bool
    strip: list[RunShown]  # oldest first, as a timeline reads


def recent_runs(monitor_ids: list[int], per_monitor: int) -> dict[int, list[JobRun]]:
    """The latest `per_monitor` runs of each monitor, newest first, in one query."""
    if not monitor_ids:
        return {}
    newest = Window(
        RowNumber(),
        partition_by=[F("monitor_id")],
        order_by=[F("created_at").desc(), F("pk").desc()],
    )
    ranked = (
        JobRun.objects.filter(monitor_id__in=monitor_ids)
        .defer("excerpt")
        .annotate(newest=newest)
        .filter(newest__lte=per_monitor)
        .order_by("monitor_id", "newest")
    )
    found: dict[int, list[JobRun]] = {}
    for run in ranked:
        found.setdefault(run.monitor_id, []).append(run)
    return found


def list_row(monitor: JobMonitor, url: str, runs: list[JobRun], now: datetime) -> Row:
    state = _state_of(monitor)
    status = state.status if state else Status.NEW
    expected = state.next_expected if state and status != Status.PAUSED else None
    shown = [run_shown(run) for run in runs]
    return Row(
        monitor=monitor,
        url=url,
        status=status_shown(status),
        schedule=schedule_words(monitor),
        last_run=shown[0] if shown else None,
        next_expected=expected,
        overdue=expected is not None and expected + monitor.grace < now,
        strip=shown[::-1],
    )


def _list_filters(request: HttpRequest) -> dict[str, str]:
    wanted = {name: request.GET.get(name, "").strip() for name in ("kind", "status")}
    if wanted["status"] not in Status.values:
        wanted["status"] = ""
    return wanted


@login_required
def index(request: HttpRequest) -> HttpResponse:
    filters = _list_filters(request)
    visible = _visible(request)
    monitors = visible.select_related("organization", "service", "state")
    if filters["kind"]:
        monitors = monitors.filter(kind=filters["kind"])
    if filters["status"] == Status.NEW:
        monitors = monitors.filter(Q(state__isnull=True) | Q(state__status=Status.NEW))
    elif filters["status"]:
        monitors = monitors.filter(state__status=filters["status"])
    worst_first = Case(
        *(When(state__status=status, then=Value(n)) for n, status in enumerate(STATUS_ORDER)),
        default=Value(STATUS_ORDER.index(Status.NEW)),
        output_field=IntegerField(),
    )
    monitors = monitors.order_by(worst_first, "name", "organization__slug", "slug")
    found = list(monitors[: LIST_LIMIT + 1])
    shown = found[:LIST_LIMIT]
    runs = recent_runs([monitor.pk for monitor in shown], STRIP_RUNS)
    several = _several_organizations(request)
    now = timezone.now()
    rows = [list_row(m, detail_url(m, several), runs.get(m.pk, []), now) for m in shown]
    kinds = visible.order_by("kind").values_list("kind", flat=True).distinct()
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status.value] = counts.get(row.status.value, 0) + 1
    context = {
        "rows": rows,
        "more": len(found) > LIST_LIMIT,
        "limit": LIST_LIMIT,
        "filters": filters,
        "filtered": bool(filters["kind"] or filters["status"]),
        "statuses": [status_shown(value) for value in Status.values],
        "counts": [(status_shown(v), counts[v]) for v in Status.values if v in counts],
        "kinds": list(kinds),
        "outcomes": [outcome_shown(value) for value in OUTCOME_WORDS],
        "strip_runs": STRIP_RUNS,
        "several": several,
    }
    return render(request, "jobs/index.html", context)


# --- one monitor ---------------------------------------------------------------------------


def _named(request: HttpRequest, slug: str) -> tuple[JobMonitor, list[JobMonitor]]:
    """The monitor of that slug among the reader's organisations (?organization=<slug>
    names one when several have it), and the others of that slug the reader sees."""
    found = list(
        _visible(request)
        .filter(slug=slug)
        .select_related(
            "organization", "service", "runbook", "escalation_policy", "ping_key", "state"
        )
        .order_by("organization__slug")
    )
    wanted = request.GET.get("organization", "")
    chosen = next((m for m in found if not wanted or m.organization.slug == wanted), None)
    if chosen is None:
        # Another organisation's monitor is not found either: its slug does not leak.
        raise Http404("No such job monitor.")
    return chosen, [m for m in found if m.pk != chosen.pk]


def _runbook(request: HttpRequest, monitor: JobMonitor) -> tuple[Runbook | None, str]:
    """The monitor's runbook, or the shared `etl-job-failure` one (its title when loaded)."""
    if monitor.runbook_id:
        return monitor.runbook, monitor.runbook.get_absolute_url()
    runbook = visibility.resolve(request.user, RUNBOOK)
    return runbook, reverse("runbooks:page", args=[RUNBOOK])


def ping_urls(monitor: JobMonitor) -> list[tuple[str, str]]:
    """(what it reports, URL) for each of the monitor's ping URLs, as Healthchecks names
    them; none without a ping key."""
    if not monitor.ping_key_id:
        return []
    base = f"{settings.SITE_URL}/ping/{monitor.ping_key.key}/{monitor.slug}"
    return [
        ("Success", base),
        ("Start", f"{base}/start"),
        ("Failure", f"{base}/fail"),
        ("Log (no change of status)", f"{base}/log"),
        ("Exit status (0 success, 1-255 failure)", f"{base}/<exit-status>"),
    ]


@login_required
def detail(request: HttpRequest, slug: str) -> HttpResponse:
    monitor, elsewhere = _named(request, slug)
    state = _state_of(monitor)
    status = state.status if state else Status.NEW
    runs = [
        run_shown(run)
        for run in JobRun.objects.filter(monitor=monitor).order_by("-created_at", "-pk")[
            :RUNS_SHOWN
        ]
    ]
    runbook, runbook_url = _runbook(request, monitor)
    # The key in the ping URLs lets whoever holds it report runs: shown to those who may
    # change the monitor, as the admin shows its key to managers only.
    manages = tenancy.has_role(request.user, monitor.organization_id, tenancy.MANAGE_ROLES)
    expected = state.next_expected if state and status != Status.PAUSED else None
    context = {
        "monitor": monitor,
        "state": state,
        "status": status_shown(status),
        "schedule": schedule_words(monitor),
        "next_expected": expected,
        "overdue": expected is not None and expected + monitor.grace < timezone.now(),
        "grace": duration_text(monitor.grace),
        "limits": limits_text(monitor.min_duration, monitor.max_duration),
        "runs": runs,
        "runs_shown": RUNS_SHOWN,
        "more_runs": len(runs) == RUNS_SHOWN,
        "runbook": runbook,
        "runbook_url": runbook_url,
        "manages": manages,
        "ping_urls": ping_urls(monitor) if manages else [],
        "api_url": reverse("job-detail", args=[monitor.slug]),
        "elsewhere": [(other, detail_url(other, True)) for other in elsewhere],
        "index_url": reverse("jobs:index"),
    }
    return render(request, "jobs/detail.html", context)
