"""Beat schedules for the alerting engine, and the built-in rules for existing organisations."""

from django.db import migrations

SCHEDULES = [
    # (task, name, every seconds)
    ("alerting.evaluate_due_rules", "alerting: evaluate due rules", 10),
    ("alerting.release_ended_silences", "alerting: release ended silences", 60),
]


def create_schedules(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for task, name, seconds in SCHEDULES:
        every, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
        PeriodicTask.objects.get_or_create(
            name=name, defaults={"task": task, "interval": every, "enabled": True}
        )


def remove_schedules(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for _, name, _ in SCHEDULES]).delete()


def seed_builtin_rules(apps, schema_editor):
    from controlplane.alerting.builtin import BUILTIN_RULES

    Organization = apps.get_model("catalog", "Organization")
    MetricSource = apps.get_model("catalog", "MetricSource")
    AlertRule = apps.get_model("alerting", "AlertRule")
    Runbook = apps.get_model("runbooks", "Runbook")
    for organization in Organization.objects.all():
        source = MetricSource.objects.filter(organization=organization).order_by("pk").first()
        for spec in BUILTIN_RULES:
            spec = dict(spec)
            needs_source, slug = spec.pop("needs_source"), spec.pop("runbook")
            if needs_source and source is None:
                continue
            runbook = Runbook.objects.filter(slug=slug, organization__isnull=True).first()
            AlertRule.objects.get_or_create(
                organization=organization,
                key=spec.pop("key"),
                defaults={
                    **spec,
                    "source": source if needs_source else None,
                    "runbook": runbook,
                    "builtin": True,
                    "verification": "unverified" if needs_source else "internal",
                },
            )


class Migration(migrations.Migration):
    dependencies = [
        ("alerting", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(create_schedules, remove_schedules),
        migrations.RunPython(seed_builtin_rules, migrations.RunPython.noop),
    ]
