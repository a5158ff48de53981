"""Beat's audit tasks: the sealing backstop every minute, and the retention job daily
at 03:30 UTC (both editable in the admin's periodic tasks)."""

from django.db import migrations

SEAL = "audit: seal events"
RETENTION = "audit: retention job"


def seed(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=60, period="seconds")
    PeriodicTask.objects.get_or_create(
        name=SEAL,
        defaults={
            "task": "audit.seal_events",
            "interval": every_minute,
            "enabled": True,
            "expire_seconds": 55,
        },
    )
    nightly, _ = CrontabSchedule.objects.get_or_create(
        minute="30",
        hour="3",
        day_of_week="*",
        day_of_month="*",
        month_of_year="*",
        timezone="UTC",
    )
    PeriodicTask.objects.get_or_create(
        name=RETENTION,
        defaults={"task": "audit.retention", "crontab": nightly, "enabled": True},
    )


def unseed(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[SEAL, RETENTION]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_append_only_trigger"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(seed, unseed)]
