"""Rules are evaluated on fixed slots: beat ticks twice a second (a rule then starts
well within a second of its slot), and the outbox dispatcher runs every second (a
nudge after each commit makes it sooner)."""

from django.db import migrations

EVALUATE = "alerting: evaluate due rules"
DISPATCH = "alerting: dispatch alert events"


def every_second(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    second, _ = IntervalSchedule.objects.get_or_create(every=1, period="seconds")
    half, _ = IntervalSchedule.objects.get_or_create(every=500_000, period="microseconds")
    # A tick that waited in the queue longer than a few periods is stale: the next
    # one does its work, so a worker that fell behind drops it instead of running it.
    # An operator's own schedule for the tick is left alone; the seeded 10 s is not.
    PeriodicTask.objects.filter(
        name=EVALUATE, interval__every=10, interval__period="seconds"
    ).update(interval=half, expire_seconds=2)
    PeriodicTask.objects.get_or_create(
        name=DISPATCH,
        defaults={
            "task": "alerting.dispatch_alert_events",
            "interval": second,
            "enabled": True,
            "expire_seconds": 5,
        },
    )


def every_ten_seconds(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    ten, _ = IntervalSchedule.objects.get_or_create(every=10, period="seconds")
    PeriodicTask.objects.filter(name=EVALUATE).update(interval=ten, expire_seconds=None)
    PeriodicTask.objects.filter(name=DISPATCH).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("alerting", "0003_evaluation_state_and_outbox"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(every_second, every_ten_seconds)]
