"""The rules every organisation gets, each linked to its runbook.

Their PromQL reads the metrics the `observability` package exports, so a team
that scrapes this control plane (or any Django service using the package) gets
them working as they are.
"""

from __future__ import annotations

from datetime import timedelta

from controlplane.alerting.models import AlertRule, Severity
from controlplane.catalog.models import MetricSource, Organization

API_5XX = (
    'sum(rate(http_server_request_duration_seconds_count{http_response_status_code=~"5.."}[5m]))'
    " / sum(rate(http_server_request_duration_seconds_count[5m]))"
)
API_LATENCY = (
    "histogram_quantile(0.95, sum by (le) (rate(http_server_request_duration_seconds_bucket[5m])))"
)

BUILTIN_RULES = [
    {
        "key": "api.5xx",
        "name": "API answers 5xx to more than 1% of requests",
        "severity": Severity.CRITICAL,
        "expr": API_5XX,
        "op": ">",
        "threshold": 0.01,
        "for_duration": timedelta(minutes=2),
        "annotations": {
            "summary": "{{ $value | humanizePercentage }} of API requests fail with 5xx",
            "description": "More than 1% of responses over 5 minutes had a 5xx status.",
        },
        "runbook": "api-5xx",
        "needs_source": True,
    },
    {
        "key": "api.latency",
        "name": "API p95 latency above 200 ms",
        "severity": Severity.WARNING,
        "expr": API_LATENCY,
        "op": ">",
        "threshold": 0.2,
        "for_duration": timedelta(minutes=5),
        "annotations": {
            "summary": "API p95 latency is {{ $value | humanizeDuration }}",
            "description": "The 95th percentile of request duration over 5 minutes "
            "is above 200 ms.",
        },
        "runbook": "api-latency",
        "needs_source": True,
    },
    {
        "key": "source.down",
        "name": "A metric source cannot be queried",
        "severity": Severity.CRITICAL,
        "expr": "sources.failing_seconds",
        "op": ">",
        "threshold": 300,
        "annotations": {
            "summary": "Metric source {{ $labels.source }} has failed for "
            "{{ $value | humanizeDuration }}",
            "description": "Rules reading it are unknown; their firing alerts stay firing.",
        },
        "runbook": "source-down",
        "needs_source": False,
    },
    {
        # The signal returns breaching series only, each limit its own (oncall.queue).
        "key": "calendar.queue",
        "name": "On-call calendars are not synchronised on time",
        "severity": Severity.CRITICAL,
        "expr": "calendar.queue",
        "op": "",
        "threshold": None,
        "for_duration": timedelta(minutes=5),
        "annotations": {
            "summary": "On-call calendars behind ({{ $labels.reason }}) "
            "{{ $labels.schedule }}: {{ $value | humanize }}",
            "description": "backlog: schedules due and not synchronised, failing ones "
            "included; late: seconds since the schedule's last successful "
            "synchronisation (its sync's trace: {{ $labels.trace_id }}). Who is on call "
            "comes from the last good shifts meanwhile.",
        },
        "runbook": "calendar-queue",
        "needs_source": False,
    },
    {
        # Only the monitors in trouble come back, with how it began (jobs.signals).
        "key": "etl.job.failure",
        "name": "An ETL, payroll or equipment job failed or is late",
        "severity": Severity.CRITICAL,
        "expr": "jobs.business_failure",
        "op": "",
        "threshold": None,
        "annotations": {
            "summary": "{{ $labels.kind }} job {{ $labels.job }}: {{ $labels.outcome }} "
            "(trace {{ $labels.trace_id }})",
            "description": "failure: a run reported failure (a fail ping or an exit "
            "status from 1 to 255); timeout: a run went past its maximum duration; "
            "too_fast: a run ended under its minimum duration; missed: no run started "
            "by its schedule plus grace, the monitor is late. Its runs: "
            "/jobs/{{ $labels.job }}/; the trace of the run that began it: "
            "{{ $labels.trace_id }}. Never re-run a job its owner has not cleared.",
        },
        "runbook": "etl-job-failure",
        "needs_source": False,
    },
    {
        # The organisation's audit-retention monitor in trouble (jobs.signals): the
        # retention job (controlplane/audit/job.py) failed for it, or never ran.
        "key": "audit.job.failure",
        "name": "The audit retention job failed or missed its run",
        "severity": Severity.CRITICAL,
        "expr": "audit.job_failure",
        "op": "",
        "threshold": None,
        "annotations": {
            "summary": "audit job {{ $labels.job }}: {{ $labels.outcome }} "
            "(trace {{ $labels.trace_id }})",
            "description": "failure: the retention purge of this organisation raised (the "
            "error is the run's output); timeout: it ran past its maximum duration; "
            "missed: no run started by its schedule (03:30 UTC) plus grace. What is past "
            "its retention stays stored meanwhile. Its runs: /jobs/{{ $labels.job }}/; "
            "the trace of the job: {{ $labels.trace_id }}. Rerun with manage.py "
            "run_retention (--dry-run first), never by deleting rows by hand.",
        },
        "runbook": "audit-job-failure",
        "needs_source": False,
    },
]


def seed_rules(organization: Organization) -> tuple[list[str], list[str]]:
    """Create the built-in rules the organisation lacks; edited ones are left alone.

    Returns (created keys, keys skipped because the organisation has no metric source).
    """
    from runbooks.models import Runbook

    source = MetricSource.objects.filter(organization=organization).order_by("pk").first()
    existing = set(
        AlertRule.objects.filter(organization=organization).values_list("key", flat=True)
    )
    created, skipped = [], []
    for spec in BUILTIN_RULES:
        spec = dict(spec)
        needs_source = spec.pop("needs_source")
        runbook_slug = spec.pop("runbook")
        if spec["key"] in existing:
            continue
        if needs_source and source is None:
            skipped.append(spec["key"])
            continue
        runbook = (
            Runbook.objects.filter(slug=runbook_slug, organization=organization).first()
            or Runbook.objects.filter(slug=runbook_slug, organization__isnull=True).first()
        )
        AlertRule.objects.create(
            organization=organization,
            source=source if needs_source else None,
            runbook=runbook,
            builtin=True,
            verification=(
                AlertRule.Verification.UNVERIFIED
                if needs_source
                else AlertRule.Verification.INTERNAL
            ),
            **spec,
        )
        created.append(spec["key"])
    return created, skipped
