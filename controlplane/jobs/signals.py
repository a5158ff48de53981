"""The job monitors' internal signals: what a rule reads of them without Prometheus.

Three general ones, one series per monitor of the organisation, labelled `job` (the
monitor's slug) and `kind`:

- `jobs.failed`: 1 for a monitor whose status is `failed` or whose last finished run
  failed, timed out or was too fast (until a run succeeds), else 0;
- `jobs.late`: 1 for a monitor whose status is `late` (a run missed its schedule plus
  grace), else 0;
- `jobs.last_success_age_seconds`: seconds since the last successful run; a monitor
  that never succeeded has no series (as a Prometheus gauge never set).

A paused monitor is neither failed nor late: pausing is how an operator says "do not
tell me". These three carry no comparison of their own: a rule reads them with `> 0`
or a threshold of seconds.

The built-in rule `etl.job.failure` reads a fourth, `jobs.business_failure`: the
same two conditions joined, for the kinds whose failures page (BUSINESS_KINDS: etl,
payroll, equipment), returning only the monitors in trouble (so the rule compares
nothing, as `calendar.queue` does), each valued 1 and labelled with

- `outcome`: how the trouble began, a run outcome: `failure`, `timeout`, `too_fast`
  (the monitor failed) or `missed` (it is late);
- `trace_id`: the trace of the run that began it, the first failed (or missed) run
  since the last one that was not. It holds still while the monitor stays in the same
  trouble, so a job failing again on retry keeps one alert (and one page) carrying the
  trace that started it; a success ends it, and the next failure is a new alert with
  its own trace. The alert and each notification carry it as a label.

Why one joined signal: a rule names one expression, and one rule (one runbook, one
policy) is what the issue asks for; the three named ones stay for rules of one's own.

`audit.job_failure` is the same for the kind `audit` (the control plane's own retention
job, controlplane/audit/job.py), labelled `job`, `outcome` and `trace_id`, read by the
built-in rule `audit.job.failure`; `etl.job.failure` never sees that kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from controlplane.alerting.internal_signals import Series, register
from controlplane.jobs.models import (
    AUDIT_KIND,
    BUSINESS_KINDS,
    JobMonitor,
    JobMonitorState,
    JobRun,
)

Status = JobMonitorState.Status
Outcome = JobRun.Outcome
# Finished runs that leave a monitor failed until a run succeeds.
FAILED_OUTCOMES = (Outcome.FAILURE.value, Outcome.TIMEOUT.value, Outcome.TOO_FAST.value)
LATE_OUTCOMES = (Outcome.MISSED.value,)


@dataclass(frozen=True)
class Standing:
    """One monitor as its state row last said (no row yet: status new)."""

    job: str
    kind: str
    status: str
    last_outcome: str
    last_success: datetime | None

    @property
    def labels(self) -> dict[str, str]:
        return {"job": self.job, "kind": self.kind}


def is_failed(standing: Standing) -> bool:
    if standing.status == Status.PAUSED:
        return False
    return standing.status == Status.FAILED or standing.last_outcome in FAILED_OUTCOMES


def is_late(standing: Standing) -> bool:
    return standing.status == Status.LATE


def trouble(standing: Standing) -> tuple[str, ...]:
    """The run outcomes of the monitor's current trouble, or () when it has none.
    Late comes first: a failed monitor whose next run is missed is late now."""
    if is_late(standing):
        return LATE_OUTCOMES
    if is_failed(standing):
        return FAILED_OUTCOMES
    return ()


def failed_series(standings: Iterable[Standing]) -> list[Series]:
    return [Series(s.labels, float(is_failed(s))) for s in standings]


def late_series(standings: Iterable[Standing]) -> list[Series]:
    return [Series(s.labels, float(is_late(s))) for s in standings]


def age_series(standings: Iterable[Standing], now: datetime) -> list[Series]:
    return [
        Series(s.labels, max((now - s.last_success).total_seconds(), 0.0))
        for s in standings
        if s.last_success is not None
    ]


@dataclass(frozen=True)
class Beginning:
    """The run that began a monitor's trouble: its outcome and trace."""

    outcome: str
    trace_id: str


def business_series(
    standings: Iterable[Standing],
    beginnings: dict[str, Beginning],
    kinds: Sequence[str] = BUSINESS_KINDS,
) -> list[Series]:
    """The series of `jobs.business_failure`: the monitors of BUSINESS_KINDS (or `kinds`)
    in trouble, by slug, with how it began (`beginnings`, by slug; a monitor without one
    is said to have begun with the outcome its status implies, and no trace). Pure."""
    found = []
    for standing in sorted(standings, key=lambda s: s.job):
        outcomes = trouble(standing)
        if standing.kind not in kinds or not outcomes:
            continue
        fallback = Beginning(
            standing.last_outcome if standing.last_outcome in outcomes else outcomes[0], ""
        )
        began = beginnings.get(standing.job, fallback)
        labels = {**standing.labels, "outcome": began.outcome, "trace_id": began.trace_id}
        found.append(Series(labels, 1.0))
    return found


# --- reading the database ------------------------------------------------------------


def standings(organization_id: int, kinds: Sequence[str] | None = None) -> list[Standing]:
    monitors = JobMonitor.objects.filter(organization_id=organization_id)
    if kinds is not None:
        monitors = monitors.filter(kind__in=kinds)
    rows = monitors.order_by("slug").values_list(
        "slug", "kind", "state__status", "state__last_outcome", "state__last_success"
    )
    return [
        Standing(slug, kind, status or Status.NEW, outcome or "", success)
        for slug, kind, status, outcome, success in rows
    ]


@register(
    "jobs.failed",
    "1 for each job monitor whose status is failed or whose last finished run failed, "
    "timed out or was too fast (until a run succeeds), else 0; paused monitors 0. "
    "Labels job, kind.",
)
def jobs_failed(organization_id: int) -> list[Series]:
    return failed_series(standings(organization_id))


@register(
    "jobs.late",
    "1 for each job monitor that is late (a run missed its schedule plus grace), else 0. "
    "Labels job, kind.",
)
def jobs_late(organization_id: int) -> list[Series]:
    return late_series(standings(organization_id))


@register(
    "jobs.last_success_age_seconds",
    "Seconds since each job monitor's last successful run (none before its first). "
    "Labels job, kind.",
)
def jobs_last_success_age_seconds(organization_id: int) -> list[Series]:
    return age_series(standings(organization_id), timezone.now())


@register(
    "jobs.business_failure",
    "The etl, payroll and equipment job monitors that failed (failure, timeout, too fast) "
    "or are late, only those, valued 1; labels job, kind, outcome (the run outcome that "
    "began it) and trace_id (that run's trace). Read by the built-in rule etl.job.failure.",
)
def jobs_business_failure(organization_id: int) -> list[Series]:
    return business_series(
        standings(organization_id, BUSINESS_KINDS),
        trouble_beginnings(organization_id, BUSINESS_KINDS),
    )


def trouble_beginnings(organization_id: int, kinds: Sequence[str]) -> dict[str, Beginning]:
    """How the trouble of each monitor of `kinds` in trouble began, by slug."""
    # Kept on the monitor's state (jobs/trouble.py), so the labels, the alert's
    # identity, hold still while the trouble lasts.
    rows = JobMonitorState.objects.filter(
        monitor__organization_id=organization_id, monitor__kind__in=kinds
    ).exclude(trouble_outcome="")
    return {
        slug: Beginning(outcome, trace_id)
        for slug, outcome, trace_id in rows.values_list(
            "monitor__slug", "trouble_outcome", "trouble_trace_id"
        )
    }


def audit_series(found: Iterable[Series]) -> list[Series]:
    """`business_series` of the audit kind, without the `kind` label (always audit)."""
    return [
        Series({name: value for name, value in s.labels.items() if name != "kind"}, s.value)
        for s in found
    ]


@register(
    "audit.job_failure",
    "The audit job monitors (kind audit: each organisation's audit-retention) that "
    "failed (failure, timeout, too fast) or are late (a missed run), only those, valued "
    "1; labels job, outcome (the run outcome that began it) and trace_id (that run's "
    "trace: the retention job's). Read by the built-in rule audit.job.failure.",
)
def audit_job_failure(organization_id: int) -> list[Series]:
    kinds = (AUDIT_KIND,)
    return audit_series(
        business_series(
            standings(organization_id, kinds), trouble_beginnings(organization_id, kinds), kinds
        )
    )
