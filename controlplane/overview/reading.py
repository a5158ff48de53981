"""What the overview shows, read in a fixed number of queries whatever the data.

Every section reads every organisation shown at once: its counts in one grouped query,
its first few rows in another (a window function keeps each organisation's first
`first`), so 3,000 open alerts cost what 3 do. The builders below take what the queries
read and return small frozen dataclasses the templates only print.

Decisions the page states too:
- test alerts (fired by hand to try paging) are counted apart and never listed: they
  need nobody;
- SLOs switched off are left out: nothing evaluates them;
- notifications that gave up are those of the last `DEAD_WITHIN` (nothing clears a dead
  row but retention, 90 days later); those still retrying are all listed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Value, When, Window
from django.db.models.functions import RowNumber
from django.urls import reverse

from controlplane.alerting.models import Alert, Severity
from controlplane.catalog.models import MetricSource, Organization
from controlplane.jobs import views as job_pages
from controlplane.jobs.models import JobMonitor, JobMonitorState
from controlplane.oncall import rota
from controlplane.oncall import views as oncall_pages
from controlplane.oncall.models import OnCallSchedule
from controlplane.paging.models import Notification
from controlplane.slo import views as slo_pages
from controlplane.slo.definition import BURN_WINDOWS
from controlplane.slo.models import SLO, SLOEvaluation
from controlplane.trace_links import trace_url

# Rows each list shows (alerts: per severity, firing and acknowledged apart).
FIRST = 5
DEAD_WITHIN = timedelta(days=7)
# Schedules of each organisation whose standing is worked out (by slug), so that a gap in
# any of them is counted and listed first, not only in the first few; past it, the
# on-call page has them all.
SCHEDULES_READ = 200

Firing, Acknowledged = Alert.State.FIRING, Alert.State.ACKNOWLEDGED
JobStatus = JobMonitorState.Status
SLOStatus = SLOEvaluation.Status
Delivery = Notification.State

SEVERITIES = (Severity.CRITICAL, Severity.WARNING, Severity.INFO)
# Each severity and delivery state reads as a word and a symbol, not a colour alone.
SEVERITY_MARKS = {
    Severity.CRITICAL: ("critical", "\u2716"),  # heavy cross
    Severity.WARNING: ("warning", "\u25b2"),  # triangle
    Severity.INFO: ("info", "\u25cb"),  # empty circle
}
DELIVERY_MARKS = {
    Delivery.DEAD: ("gave up", "\u2716"),  # heavy cross
    Delivery.FAILED: ("retrying", "\u21bb"),  # clockwise arrow
}
# SLO statuses that need someone, for the page's summary line.
SLO_TROUBLE = (SLOStatus.BREACHING, SLOStatus.EXHAUSTED, SLOStatus.WARNING)


@dataclass(frozen=True)
class Mark:
    value: str
    word: str
    symbol: str
    label: str  # the long label, for a tooltip


def severity_mark(value: str) -> Mark:
    word, symbol = SEVERITY_MARKS.get(value, (value or "unknown", "?"))
    label = Severity(value).label if value in Severity.values else value
    return Mark(value, word, symbol, label)


def delivery_mark(value: str) -> Mark:
    word, symbol = DELIVERY_MARKS.get(value, (value, "?"))
    label = Delivery(value).label if value in Delivery.values else value
    return Mark(value, word, symbol, label)


def named_url(path: str, organization_slug: str, several: bool) -> str:
    """A slug's page names its organisation when the reader reads several (slugs are
    unique per organisation only)."""
    return f"{path}?{urlencode({'organization': organization_slug})}" if several else path


def first_of_each(queryset: QuerySet, partition: Sequence, order: Sequence, first: int) -> QuerySet:
    """The first `first` rows of each partition in `order`, in one query."""
    rank = Window(RowNumber(), partition_by=list(partition), order_by=list(order))
    return queryset.annotate(overview_rank=rank).filter(overview_rank__lte=first)


# --- alerts ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertItem:
    id: int
    url: str
    rule_key: str
    summary: str
    severity: Mark
    state: str
    started_at: datetime
    acknowledged_at: datetime | None
    service: str
    silenced: bool
    runbook_url: str
    slo_name: str
    slo_url: str
    trace_id: str
    trace_url: str


@dataclass(frozen=True)
class AlertGroup:
    """The open alerts of one severity in one state, oldest first."""

    severity: Mark
    state: str
    count: int
    items: tuple[AlertItem, ...]
    all_url: str

    @property
    def more(self) -> int:
        return self.count - len(self.items)


@dataclass(frozen=True)
class AlertsSection:
    firing: tuple[AlertGroup, ...]
    acknowledged: tuple[AlertGroup, ...]
    tests: int  # open test alerts: counted, never listed
    all_url: str

    @property
    def firing_count(self) -> int:
        return sum(group.count for group in self.firing)

    @property
    def acknowledged_count(self) -> int:
        return sum(group.count for group in self.acknowledged)


def alerts_url(organization_slug: str, several: bool, **filters: str) -> str:
    """The alert list, narrowed to the organisation when the reader reads several."""
    query = {**filters, **({"organization": organization_slug} if several else {})}
    path = reverse("alerts:index")
    return f"{path}?{urlencode(query)}" if query else path


def _severity_rank(value: str) -> int:
    return SEVERITIES.index(value) if value in SEVERITIES else len(SEVERITIES)


def alerts_section(
    counts: Mapping[tuple[str, str, bool], int],
    items: Iterable[AlertItem],
    organization_slug: str,
    several: bool,
) -> AlertsSection:
    """counts: (state, severity, is_test) -> open alerts; items: the first of each
    (state, severity), test alerts left out. Severities worst first, a group per
    severity that has alerts; links name the organisation when the reader reads several."""
    by_group: dict[tuple[str, str], list[AlertItem]] = defaultdict(list)
    for item in items:
        by_group[item.state, item.severity.value].append(item)

    def groups(state: str) -> tuple[AlertGroup, ...]:
        severities = sorted(
            {sev for (st, sev, test), n in counts.items() if st == state and not test and n},
            key=lambda sev: (_severity_rank(sev), sev),
        )
        return tuple(
            AlertGroup(
                severity=severity_mark(severity),
                state=state,
                count=counts[state, severity, False],
                items=tuple(sorted(by_group[state, severity], key=lambda i: (i.started_at, i.id))),
                all_url=alerts_url(organization_slug, several, state=state, severity=severity),
            )
            for severity in severities
        )

    tests = sum(n for (_, _, test), n in counts.items() if test)
    return AlertsSection(
        firing=groups(Firing),
        acknowledged=groups(Acknowledged),
        tests=tests,
        all_url=alerts_url(organization_slug, several),
    )


def _alert_runbook(alert: Alert) -> str:
    # The rule's runbook; an SLO's or Alertmanager's alert carries its own link.
    if alert.rule_id and alert.rule is not None and alert.rule.runbook_id:
        return alert.rule.runbook.get_absolute_url()
    return alert.runbook_url


def alert_item(alert: Alert, organization_slug: str, several: bool) -> AlertItem:
    slo = alert.slo if alert.slo_id else None
    return AlertItem(
        id=alert.pk,
        url=alert.get_absolute_url(),
        rule_key=alert.rule_key,
        summary=str((alert.annotations or {}).get("summary", "")),
        severity=severity_mark(alert.severity),
        state=alert.state,
        started_at=alert.started_at,
        acknowledged_at=alert.acknowledged_at,
        service=alert.service.name if alert.service_id and alert.service else "",
        silenced=alert.silenced_by_id is not None,
        runbook_url=_alert_runbook(alert),
        slo_name=slo.name if slo else "",
        slo_url=named_url(slo.get_absolute_url(), organization_slug, several) if slo else "",
        trace_id=alert.trace_id,
        trace_url=trace_url(alert.trace_id),
    )


def read_alerts(
    organizations: Mapping[int, Organization], several: bool, first: int = FIRST
) -> dict[int, AlertsSection]:
    open_alerts = Alert.objects.filter(organization_id__in=list(organizations)).exclude(
        state=Alert.State.RESOLVED
    )
    counts: dict[int, dict[tuple[str, str, bool], int]] = defaultdict(lambda: defaultdict(int))
    grouped = open_alerts.values("organization_id", "state", "severity", "is_test")
    for row in grouped.annotate(n=Count("pk")).order_by():
        key = (row["state"], row["severity"], row["is_test"])
        counts[row["organization_id"]][key] += row["n"]
    shown = first_of_each(
        open_alerts.filter(is_test=False),
        [F("organization_id"), F("state"), F("severity")],
        [F("started_at").asc(), F("pk").asc()],
        first,
    ).select_related("rule__runbook", "slo", "service")
    items: dict[int, list[AlertItem]] = defaultdict(list)
    for alert in shown:
        slug = organizations[alert.organization_id].slug
        items[alert.organization_id].append(alert_item(alert, slug, several))
    return {
        pk: alerts_section(counts[pk], items[pk], org.slug, several)
        for pk, org in organizations.items()
    }


# --- SLOs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SLOItem:
    name: str
    url: str
    status: slo_pages.StatusShown
    budget: str
    burn: str  # the fastest burn rate, with its window
    evaluated_at: datetime | None
    trace_id: str
    trace_url: str


@dataclass(frozen=True)
class SLOSection:
    count: int
    by_status: tuple[tuple[slo_pages.StatusShown, int], ...]  # worst first
    items: tuple[SLOItem, ...]
    all_url: str

    @property
    def trouble(self) -> int:
        return sum(n for status, n in self.by_status if status.value in SLO_TROUBLE)


# Worst first in the counts.
SLO_STATUS_ORDER = (
    SLOStatus.EXHAUSTED,
    SLOStatus.BREACHING,
    SLOStatus.WARNING,
    SLOStatus.NO_DATA,
    SLOStatus.INSUFFICIENT_TRAFFIC,
    SLOStatus.PENDING,
    SLOStatus.OK,
)


def _rate(value: object) -> float | None:
    """A burn rate as stored in JSON: a number (infinite allowed), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def fastest_burn(rates: Mapping[str, object]) -> tuple[float | None, str]:
    """The highest burn rate measured and its window; a tie names the shorter window."""
    best: tuple[float | None, str] = (None, "")
    for window in BURN_WINDOWS:  # shortest first
        rate = _rate(rates.get(window))
        if rate is not None and (best[0] is None or rate > best[0]):
            best = (rate, window)
    return best


def burn_text(rates: Mapping[str, object]) -> str:
    rate, window = fastest_burn(rates or {})
    return f"{slo_pages.burn_text(rate)} ({window})" if window else slo_pages.burn_text(None)


def _evaluation_of(slo: SLO) -> SLOEvaluation | None:
    try:
        return slo.evaluation
    except SLOEvaluation.DoesNotExist:
        return None


def slo_item(slo: SLO, organization_slug: str, several: bool) -> SLOItem:
    evaluation = _evaluation_of(slo)
    return SLOItem(
        name=slo.name,
        url=named_url(slo.get_absolute_url(), organization_slug, several),
        status=slo_pages.status_shown(evaluation.status if evaluation else SLOStatus.PENDING),
        budget=slo_pages.budget_text(evaluation.budget_remaining if evaluation else None),
        burn=burn_text(evaluation.burn_rates if evaluation else {}),
        evaluated_at=evaluation.evaluated_at if evaluation else None,
        trace_id=evaluation.trace_id if evaluation else "",
        trace_url=trace_url(evaluation.trace_id) if evaluation else "",
    )


def slo_section(counts: Mapping[str, int], items: Sequence[SLOItem]) -> SLOSection:
    by_status = tuple(
        (slo_pages.status_shown(status), counts[status])
        for status in SLO_STATUS_ORDER
        if counts.get(status)
    )
    return SLOSection(
        count=sum(counts.values()),
        by_status=by_status,
        items=tuple(items),
        all_url=reverse("slos:board"),
    )


def read_slos(
    organizations: Mapping[int, Organization], several: bool, first: int = FIRST
) -> dict[int, SLOSection]:
    slos = SLO.objects.filter(organization_id__in=list(organizations), enabled=True)
    counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in slos.values("organization_id", "evaluation__status").annotate(n=Count("pk")):
        # No evaluation row yet: pending, as the board says.
        counts[row["organization_id"]][row["evaluation__status"] or SLOStatus.PENDING] += row["n"]
    shown = first_of_each(
        slos,
        [F("organization_id")],
        # Worst budget first; never evaluated (no budget yet) last.
        [F("evaluation__budget_remaining").asc(nulls_last=True), F("name"), F("slug")],
        first,
    ).select_related("evaluation")
    items: dict[int, list[SLOItem]] = defaultdict(list)
    for slo in sorted(shown, key=lambda s: s.overview_rank):
        slug = organizations[slo.organization_id].slug
        items[slo.organization_id].append(slo_item(slo, slug, several))
    return {org: slo_section(counts[org], items[org]) for org in organizations}


# --- job monitors ----------------------------------------------------------------------


@dataclass(frozen=True)
class JobItem:
    name: str
    url: str
    status: job_pages.Shown
    since: datetime
    trouble: str  # how the trouble began: "failure", "missed"...
    next_expected: datetime | None  # when a late job was due
    trace_id: str
    trace_url: str


@dataclass(frozen=True)
class JobSection:
    failed: int
    late: int
    items: tuple[JobItem, ...]
    all_url: str

    @property
    def count(self) -> int:
        return self.failed + self.late


JOB_TROUBLE = (JobStatus.FAILED, JobStatus.LATE)


def job_item(
    monitor: JobMonitor, last_run_trace: str, organization_slug: str, several: bool
) -> JobItem:
    state = monitor.state
    # The run that began the trouble (what etl.job.failure names), else the last run.
    trace = state.trouble_trace_id or last_run_trace
    return JobItem(
        name=monitor.name,
        url=named_url(monitor.get_absolute_url(), organization_slug, several),
        status=job_pages.status_shown(state.status),
        since=state.changed_at,
        trouble=job_pages.outcome_shown(state.trouble_outcome).word
        if state.trouble_outcome
        else "",
        next_expected=state.next_expected if state.status == JobStatus.LATE else None,
        trace_id=trace,
        trace_url=trace_url(trace),
    )


def read_jobs(
    organizations: Mapping[int, Organization], several: bool, first: int = FIRST
) -> dict[int, JobSection]:
    troubled = JobMonitor.objects.filter(
        organization_id__in=list(organizations), state__status__in=JOB_TROUBLE
    )
    counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in troubled.values("organization_id", "state__status").annotate(n=Count("pk")):
        counts[row["organization_id"]][row["state__status"]] += row["n"]
    failed_first = Case(
        When(state__status=JobStatus.FAILED, then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )
    shown = sorted(
        first_of_each(
            troubled,
            [F("organization_id")],
            # Failed before late, each longest in trouble first.
            [failed_first.asc(), F("state__changed_at").asc(), F("pk").asc()],
            first,
        ).select_related("state"),
        key=lambda m: m.overview_rank,
    )
    untraced = [m.pk for m in shown if not m.state.trouble_trace_id]
    last_runs = job_pages.recent_runs(untraced, 1) if untraced else {}
    items: dict[int, list[JobItem]] = defaultdict(list)
    for monitor in shown:
        runs = last_runs.get(monitor.pk) or []
        slug = organizations[monitor.organization_id].slug
        item = job_item(monitor, runs[0].trace_id if runs else "", slug, several)
        items[monitor.organization_id].append(item)
    return {
        org: JobSection(
            failed=counts[org][JobStatus.FAILED],
            late=counts[org][JobStatus.LATE],
            items=tuple(items[org]),
            all_url=reverse("jobs:index"),
        )
        for org in organizations
    }


# --- on call ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleItem:
    name: str
    url: str
    on_call: tuple[str, ...]  # nobody: empty
    next_name: str
    next_start: datetime | None
    gap: datetime | None  # when nobody will be on call within the next 24 hours

    @property
    def uncovered(self) -> bool:
        return not self.on_call or self.gap is not None


@dataclass(frozen=True)
class OnCallSection:
    count: int
    uncovered: int  # of the first SCHEDULES_READ, not only of those listed
    items: tuple[ScheduleItem, ...]  # uncovered first
    all_url: str


def oncall_section(count: int, standings: Sequence[ScheduleItem], first: int) -> OnCallSection:
    """standings: every schedule read, by slug. The uncovered ones first (by slug still),
    then the first `first` of them listed; the gaps are counted over them all."""
    ordered = sorted(standings, key=lambda item: not item.uncovered)
    return OnCallSection(
        count=count,
        uncovered=sum(1 for item in ordered if item.uncovered),
        items=tuple(ordered[:first]),
        all_url=reverse("oncall:index"),
    )


def schedule_item(standing: oncall_pages.Standing, url: str) -> ScheduleItem:
    upcoming = standing.next
    return ScheduleItem(
        name=standing.schedule.name,
        url=url,
        on_call=tuple(standing.now),
        next_name=upcoming.responder.user.get_username() if upcoming else "",
        next_start=upcoming.start if upcoming else None,
        gap=standing.gap,
    )


def read_oncall(
    organizations: Mapping[int, Organization], several: bool, now: datetime, first: int = FIRST
) -> dict[int, OnCallSection]:
    schedules = OnCallSchedule.objects.filter(organization_id__in=list(organizations))
    counts = dict(
        schedules.values("organization_id")
        .annotate(n=Count("pk"))
        .values_list("organization_id", "n")
    )
    # Every schedule's standing (up to SCHEDULES_READ each), not only the first few: a gap
    # in the last by slug must come first and be counted.
    read = list(first_of_each(schedules, [F("organization_id")], [F("slug")], SCHEDULES_READ))
    by_schedule: dict[int, list] = defaultdict(list)
    # As the on-call page reads them (its query, not a copy of it): past the gap
    # lookahead by a day, for "next".
    ahead = now + rota.GAP_LOOKAHEAD + timedelta(days=1)
    for shift in oncall_pages.shifts_between(read, now, ahead) if read else ():
        by_schedule[shift.schedule_id].append(shift)
    items: dict[int, list[ScheduleItem]] = defaultdict(list)
    for schedule in sorted(read, key=lambda s: s.slug):
        standing = oncall_pages.standing(schedule, by_schedule[schedule.pk], now)
        slug = organizations[schedule.organization_id].slug
        url = named_url(schedule.get_absolute_url(), slug, several)
        items[schedule.organization_id].append(schedule_item(standing, url))
    return {org: oncall_section(counts.get(org, 0), items[org], first) for org in organizations}


# --- notifications ---------------------------------------------------------------------


@dataclass(frozen=True)
class NotificationItem:
    id: int
    state: Mark
    channel: str
    channel_kind: str
    event: str
    alert_url: str
    alert_label: str
    is_test: bool
    attempts: int
    last_error: str
    created_at: datetime
    next_attempt_at: datetime | None  # retrying only
    trace_id: str
    trace_url: str


@dataclass(frozen=True)
class NotificationSection:
    dead: int
    retrying: int
    items: tuple[NotificationItem, ...]  # gave up first, newest first

    @property
    def count(self) -> int:
        return self.dead + self.retrying


def notification_item(row: Notification) -> NotificationItem:
    alert = row.alert if row.alert_id else None
    return NotificationItem(
        id=row.pk,
        state=delivery_mark(row.state),
        channel=row.channel_name,
        channel_kind=row.get_channel_kind_display(),
        event=row.get_event_display(),
        alert_url=alert.get_absolute_url() if alert else "",
        alert_label=alert.rule_key if alert else "",
        is_test=row.is_test,
        attempts=row.attempts,
        last_error=row.last_error,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at if row.state == Delivery.FAILED else None,
        trace_id=row.trace_id,
        trace_url=trace_url(row.trace_id),
    )


def read_notifications(
    organizations: Mapping[int, Organization], now: datetime, first: int = FIRST
) -> dict[int, NotificationSection]:
    failing = Notification.objects.filter(organization_id__in=list(organizations)).filter(
        Q(state=Delivery.FAILED) | Q(state=Delivery.DEAD, created_at__gte=now - DEAD_WITHIN)
    )
    counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in failing.values("organization_id", "state").annotate(n=Count("pk")).order_by():
        counts[row["organization_id"]][row["state"]] += row["n"]
    dead_first = Case(
        When(state=Delivery.DEAD, then=Value(0)), default=Value(1), output_field=IntegerField()
    )
    shown = sorted(
        first_of_each(
            failing,
            [F("organization_id")],
            [dead_first.asc(), F("created_at").desc(), F("pk").desc()],
            first,
        ).select_related("alert"),
        key=lambda n: n.overview_rank,
    )
    items: dict[int, list[NotificationItem]] = defaultdict(list)
    for row in shown:
        items[row.organization_id].append(notification_item(row))
    return {
        org: NotificationSection(
            dead=counts[org][Delivery.DEAD],
            retrying=counts[org][Delivery.FAILED],
            items=tuple(items[org]),
        )
        for org in organizations
    }


# --- metric sources --------------------------------------------------------------------


@dataclass(frozen=True)
class SourceItem:
    name: str
    url: str  # the API's view of it: sources have no page of their own
    failing_since: datetime
    last_error: str


@dataclass(frozen=True)
class SourceSection:
    count: int
    items: tuple[SourceItem, ...]  # failing longest first


def read_sources(
    organizations: Mapping[int, Organization], first: int = FIRST
) -> dict[int, SourceSection]:
    failing = MetricSource.objects.filter(
        organization_id__in=list(organizations), health__failing_since__isnull=False
    )
    counts = dict(
        failing.values("organization_id")
        .annotate(n=Count("pk"))
        .values_list("organization_id", "n")
    )
    shown = sorted(
        first_of_each(
            failing,
            [F("organization_id")],
            [F("health__failing_since").asc(), F("name").asc()],
            first,
        ).select_related("health"),
        key=lambda s: s.overview_rank,
    )
    items: dict[int, list[SourceItem]] = defaultdict(list)
    for source in shown:
        slug = organizations[source.organization_id].slug
        items[source.organization_id].append(
            SourceItem(
                name=source.name,
                url=f"{reverse('source-detail', args=[source.name])}?"
                + urlencode({"organization": slug}),
                failing_since=source.health.failing_since,
                last_error=source.health.last_error,
            )
        )
    return {
        org: SourceSection(count=counts.get(org, 0), items=tuple(items[org]))
        for org in organizations
    }


# --- the whole ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OrganizationOverview:
    organization: Organization
    alerts: AlertsSection
    slos: SLOSection
    jobs: JobSection
    oncall: OnCallSection
    notifications: NotificationSection
    sources: SourceSection


def read(
    organizations: Sequence[Organization], several: bool, now: datetime, first: int = FIRST
) -> list[OrganizationOverview]:
    """The overview of each organisation, in the order given: 14 queries at most."""
    if not organizations:
        return []
    by_id = {org.pk: org for org in organizations}
    alerts = read_alerts(by_id, several, first)
    slos = read_slos(by_id, several, first)
    jobs = read_jobs(by_id, several, first)
    oncall = read_oncall(by_id, several, now, first)
    notifications = read_notifications(by_id, now, first)
    sources = read_sources(by_id, first)
    return [
        OrganizationOverview(
            organization=org,
            alerts=alerts[org.pk],
            slos=slos[org.pk],
            jobs=jobs[org.pk],
            oncall=oncall[org.pk],
            notifications=notifications[org.pk],
            sources=sources[org.pk],
        )
        for org in organizations
    ]


def summary(overviews: Iterable[OrganizationOverview]) -> str:
    """One sentence of what needs someone, for the polite announcement of a refresh."""
    overviews = list(overviews)
    firing = sum(o.alerts.firing_count for o in overviews)
    acknowledged = sum(o.alerts.acknowledged_count for o in overviews)
    slos = sum(o.slos.trouble for o in overviews)
    jobs = sum(o.jobs.count for o in overviews)
    uncovered = sum(o.oncall.uncovered for o in overviews)
    notifications = sum(o.notifications.count for o in overviews)
    sources = sum(o.sources.count for o in overviews)
    return (
        f"{firing} firing and {acknowledged} acknowledged alerts; "
        f"{slos} SLOs burning; {jobs} jobs failed or late; "
        f"{uncovered} schedules with a gap; {notifications} notifications failing; "
        f"{sources} sources failing."
    )
