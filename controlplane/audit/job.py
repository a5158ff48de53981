"""`audit.retention.job`: the nightly retention run, reporting itself as job runs.

Beat starts the Celery task `audit.retention` (tasks.py) at 03:30 UTC (migration
0003_schedules). `run()` is its body: one span `audit.retention.job` (with the
package's job metrics, `job_runs_total{job="audit.retention.job"}`) around every
organisation's purge (`retention.purge`), then the events of no organisation.

Each organisation's purge is one run of its built-in job monitor `audit-retention`
(kind `audit`), recorded in-process through `jobs.runs.record_ping` as a Healthchecks
client would over HTTP: a start, then a success (what went, by category) or a failure
(the error), with its own run id and the job's trace. So the job's runs, durations,
failures and missed nights are the job monitors' to see, and the built-in rule
`audit.job.failure` (signal `audit.job_failure`, jobs/signals.py) pages for them.

One organisation's failure does not stop the others: their data is theirs to have
removed on time. The task then raises, after all of them, so that Celery, the span and
`job_runs_total{result="failure"}` see the night failed as well.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from controlplane.catalog.actors import Actor
from controlplane.catalog.models import Organization
from controlplane.jobs import runs, schedule
from controlplane.jobs.models import AUDIT_KIND, JobMonitor, JobMonitorState
from observability import context, tracing
from observability.jobs import job_run

logger = logging.getLogger(__name__)

SPAN = "audit.retention.job"
# A child of SPAN per organisation: where a failure is recorded, with its exception.
PURGE_SPAN = "audit.retention.purge"
ACTOR = Actor.system("audit.retention")
MONITOR_SLUG = "audit-retention"
RUNBOOK = "audit-job-failure"
# The built-in monitor's definition: the schedule of beat's "audit: retention job"
# (03:30 UTC daily); hours of grace, as a worker busy with a backlog may start it late
# and the organisations before this one take their time; a run open for longer than
# the maximum duration is a hung purge, timed out by the overdue check.
MONITOR: dict[str, Any] = {
    "name": "Audit retention job",
    "kind": AUDIT_KIND,
    "schedule_kind": JobMonitor.Schedule.CRON,
    "cron": "30 3 * * *",
    "time_zone": "UTC",
    "grace": timedelta(hours=3),
    "max_duration": timedelta(hours=2),
}
# The key of the events of no organisation (chain 0) in run()'s answer: not a slug.
NO_ORGANIZATION = "(no organisation)"


class RetentionFailed(RuntimeError):
    """The purge failed for some organisations (the others went through)."""


# --- pure pieces ---------------------------------------------------------------------


def removed_note(removed: Mapping[str, int]) -> str:
    """The output of a successful run: rows removed, by category."""
    if not removed:
        return "Nothing is older than its retention."
    lines = [f"{category}: {rows} removed" for category, rows in sorted(removed.items())]
    return "\n".join([*lines, f"total: {sum(removed.values())} removed"])


def failure_note(error: BaseException) -> str:
    """The output of a failed run: the error, as the runbook matches it."""
    return f"{type(error).__name__}: {error}".strip()


def answer(
    trace_id: str, removed: Mapping[str, Mapping[str, int]], failed: Mapping[str, str]
) -> dict[str, Any]:
    """What the task returns (its Celery result): plain JSON."""
    return {
        "trace_id": trace_id,
        "removed": {key: dict(rows) for key, rows in removed.items()},
        "failed": dict(failed),
    }


def failed_message(failed: Mapping[str, str]) -> str:
    names = ", ".join(sorted(failed))
    return f"the retention purge failed for {len(failed)} of them: {names}"


# --- the built-in monitor ------------------------------------------------------------


def seed_monitor(organization: Organization, now: datetime | None = None) -> JobMonitor:
    """The organisation's `audit-retention` monitor, made with its definition when it has
    none; an existing one (edited or not) is left as it is.

    A new one expects its first run at the schedule's next time: the job is known to be
    scheduled, so a night it never runs is a missed run, not a monitor still waiting for
    its first ping.
    """
    from runbooks.models import Runbook

    found = JobMonitor.objects.filter(organization=organization, slug=MONITOR_SLUG).first()
    if found is not None:
        return found
    runbook = (
        Runbook.objects.filter(slug=RUNBOOK, organization=organization).first()
        or Runbook.objects.filter(slug=RUNBOOK, organization__isnull=True).first()
    )
    monitor = JobMonitor(organization=organization, slug=MONITOR_SLUG, runbook=runbook, **MONITOR)
    try:
        with transaction.atomic():
            monitor.save()
            JobMonitorState.objects.create(
                monitor=monitor,
                next_expected=schedule.next_expected(monitor, now or timezone.now()),
            )
    except IntegrityError:
        # Made meanwhile by a racing seed (a retention run and the organisation's save).
        return JobMonitor.objects.get(organization=organization, slug=MONITOR_SLUG)
    return monitor


# Connected in apps.py: the post_save receiver that seeds a new organisation's monitor.
SEED_DISPATCH_UID = "audit.seed_retention_monitor"


def seed_for_new_organization(
    sender: Any, instance: Organization, created: bool, raw: bool = False, **_: Any
) -> None:
    if created and not raw:
        seed_monitor(instance)


# --- the job ---------------------------------------------------------------------------


def run(now: datetime | None = None) -> dict[str, Any]:
    """Purge what is older than its retention, every organisation then the events of no
    organisation, each organisation's purge reported as a run of its monitor. Raises
    RetentionFailed, after all of them, when any failed."""
    from controlplane.audit import retention

    now = now or timezone.now()
    removed: dict[str, dict[str, int]] = {}
    failed: dict[str, str] = {}
    with job_run(SPAN):
        trace_id = tracing.current_trace_id() or ""
        for organization in Organization.objects.order_by("pk"):
            with context.scope(organization_id=str(organization.pk)):
                try:
                    removed[organization.slug] = purge_reported(organization, now)
                except Exception as error:
                    logger.exception("audit retention of organisation %s failed", organization.slug)
                    failed[organization.slug] = failure_note(error)
        try:
            with tracing.span(PURGE_SPAN, {"app.audit.chain": 0}):
                removed[NO_ORGANIZATION] = dict(retention.purge(None, now))
        except Exception as error:
            logger.exception("audit retention of the events of no organisation failed")
            failed[NO_ORGANIZATION] = failure_note(error)
        if failed:
            raise RetentionFailed(failed_message(failed))
    return answer(trace_id, removed, failed)


def purge_reported(
    organization: Organization, now: datetime, batch_size: int | None = None
) -> dict[str, int]:
    """One organisation's purge, as one run of its monitor: start, then success or
    failure. Raises what the purge (or the reporting) raised."""
    from controlplane.audit import retention

    monitor = seed_monitor(organization)
    rid = uuid.uuid4()
    attributes = {
        "app.organization.id": str(organization.pk),
        "app.audit.organization": organization.slug,
    }
    with (
        context.scope(organization_id=str(organization.pk)),
        tracing.span(PURGE_SPAN, attributes) as span,
    ):
        _ping(monitor, "start", rid)
        try:
            removed = dict(
                retention.purge(organization, now, batch_size=batch_size or retention.BATCH_SIZE)
            )
        except Exception as error:
            _ping(monitor, "fail", rid, failure_note(error))
            raise
        span.set_attribute("app.audit.removed", sum(removed.values()))
        _ping(monitor, "success", rid, removed_note(removed))
    return removed


def _ping(monitor: JobMonitor, kind: runs.PingKind, rid: uuid.UUID, body: str = "") -> None:
    runs.record_ping(
        monitor,
        runs.Ping(
            kind=kind,
            at=timezone.now(),
            run_id=rid,
            body=body,
            trace_id=tracing.current_trace_id() or "",
            span_id=tracing.current_span_id() or "",
        ),
        ACTOR,
    )
