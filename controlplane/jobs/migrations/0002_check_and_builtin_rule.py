"""Beat's overdue check every 30 seconds (jobs.check_job_monitors), and the built-in
rule `etl.job.failure` for the organisations that exist already (new ones get it from
alerting.builtin.seed_rules). The rule's spec is frozen here, as it was when the rule
came, so a later edit of BUILTIN_RULES does not rewrite history."""

from django.db import migrations

NAME = "jobs: check job monitors"
TASK = "jobs.check_job_monitors"

KEY = "etl.job.failure"
RULE = {
    "name": "An ETL, payroll or equipment job failed or is late",
    "severity": "critical",
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
    "builtin": True,
    "verification": "internal",
}


def seed_check(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=30, period="seconds")
    # A run that waited in the queue past the next one is stale: that one does its work.
    PeriodicTask.objects.get_or_create(
        name=NAME,
        defaults={"task": TASK, "interval": every, "enabled": True, "expire_seconds": 25},
    )


def unseed_check(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name=NAME).delete()


def seed_rule(apps, schema_editor):
    Organization = apps.get_model("catalog", "Organization")
    AlertRule = apps.get_model("alerting", "AlertRule")
    Runbook = apps.get_model("runbooks", "Runbook")
    runbook = Runbook.objects.filter(slug="etl-job-failure", organization__isnull=True).first()
    for organization in Organization.objects.all():
        AlertRule.objects.get_or_create(
            organization=organization, key=KEY, defaults={**RULE, "runbook": runbook}
        )


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("alerting", "0007_alert_alertmanager"),
        ("runbooks", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(seed_check, unseed_check),
        migrations.RunPython(seed_rule, migrations.RunPython.noop),
    ]
