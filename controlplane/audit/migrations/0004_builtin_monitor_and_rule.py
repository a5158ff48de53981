"""The built-in job monitor `audit-retention` (the retention job reports each
organisation's purge as its run) and the built-in rule `audit.job.failure` for the
organisations that exist already; new ones get them from audit.apps (the monitor) and
alerting.builtin.seed_rules (the rule). Both specs are frozen here, as they were when
they came, so a later edit of job.MONITOR or BUILTIN_RULES does not rewrite history."""

from datetime import UTC, datetime, timedelta

from django.db import migrations

SLUG = "audit-retention"
# Beat's "audit: retention job" (0003_schedules): daily at 03:30 UTC.
MONITOR = {
    "name": "Audit retention job",
    "kind": "audit",
    "schedule_kind": "cron",
    "cron": "30 3 * * *",
    "time_zone": "UTC",
    "grace": timedelta(hours=3),
    "max_duration": timedelta(hours=2),
}
KEY = "audit.job.failure"
RULE = {
    "name": "The audit retention job failed or missed its run",
    "severity": "critical",
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
    "builtin": True,
    "verification": "internal",
}
RUNBOOK = "audit-job-failure"


def first_run_after(now: datetime) -> datetime:
    """The next 03:30 UTC strictly after `now`: the monitor's first expected run."""
    today = now.astimezone(UTC).replace(hour=3, minute=30, second=0, microsecond=0)
    return today if today > now else today + timedelta(days=1)


def seed(apps, schema_editor):
    Organization = apps.get_model("catalog", "Organization")
    JobMonitor = apps.get_model("jobs", "JobMonitor")
    JobMonitorState = apps.get_model("jobs", "JobMonitorState")
    AlertRule = apps.get_model("alerting", "AlertRule")
    Runbook = apps.get_model("runbooks", "Runbook")
    shared = Runbook.objects.filter(slug=RUNBOOK, organization__isnull=True).first()
    expected = first_run_after(datetime.now(UTC))
    for organization in Organization.objects.all():
        runbook = Runbook.objects.filter(slug=RUNBOOK, organization=organization).first() or shared
        monitor, created = JobMonitor.objects.get_or_create(
            organization=organization, slug=SLUG, defaults={**MONITOR, "runbook": runbook}
        )
        if created:
            # Expected from the next night on: a night it never runs is a missed run.
            JobMonitorState.objects.get_or_create(
                monitor=monitor, defaults={"next_expected": expected}
            )
        AlertRule.objects.get_or_create(
            organization=organization, key=KEY, defaults={**RULE, "runbook": runbook}
        )


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0003_schedules"),
        ("jobs", "0004_trouble_beginning"),
        ("alerting", "0008_alert_slo"),
        ("runbooks", "0001_initial"),
    ]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
