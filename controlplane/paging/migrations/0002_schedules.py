"""Beat's paging ticks: escalations advanced and notifications delivered every second
(a step is acted on within a second of its time; a nudge after each commit that writes
notifications makes delivery sooner still)."""

from django.db import migrations

ESCALATE = "paging: escalate"
DELIVER = "paging: deliver notifications"
SCHEDULES = ((ESCALATE, "paging.escalate"), (DELIVER, "paging.deliver_notifications"))


def seed(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    second, _ = IntervalSchedule.objects.get_or_create(every=1, period="seconds")
    for name, task in SCHEDULES:
        # A tick that waited in the queue for seconds is stale: the next one does its work.
        PeriodicTask.objects.get_or_create(
            name=name,
            defaults={"task": task, "interval": second, "enabled": True, "expire_seconds": 5},
        )


def unseed(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, _ in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("paging", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(seed, unseed)]
