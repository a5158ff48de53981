"""The built-in rule `calendar.queue` for the organisations that exist already (new ones
get it from alerting.builtin.seed_rules). The spec is frozen here, as it was when the
rule came, so a later edit of BUILTIN_RULES does not rewrite history."""

from datetime import timedelta

from django.db import migrations

KEY = "calendar.queue"
RULE = {
    "name": "On-call calendars are not synchronised on time",
    "severity": "critical",
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
    "builtin": True,
    "verification": "internal",
}


def seed(apps, schema_editor):
    Organization = apps.get_model("catalog", "Organization")
    AlertRule = apps.get_model("alerting", "AlertRule")
    Runbook = apps.get_model("runbooks", "Runbook")
    runbook = Runbook.objects.filter(slug="calendar-queue", organization__isnull=True).first()
    for organization in Organization.objects.all():
        AlertRule.objects.get_or_create(
            organization=organization, key=KEY, defaults={**RULE, "runbook": runbook}
        )


class Migration(migrations.Migration):
    dependencies = [
        ("oncall", "0002_schedules"),
        ("alerting", "0007_alert_alertmanager"),
        ("runbooks", "0001_initial"),
    ]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
