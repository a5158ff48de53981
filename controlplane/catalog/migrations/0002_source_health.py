"""Source health moves to its own row, written by the evaluator only."""

import django.db.models.deletion
from django.db import migrations, models


def copy_health(apps, schema_editor):
    """Move what the evaluator had written on each source to its health row."""
    MetricSource = apps.get_model("catalog", "MetricSource")
    SourceHealth = apps.get_model("catalog", "SourceHealth")
    SourceHealth.objects.bulk_create(
        [
            SourceHealth(
                source_id=source.pk,
                failing_since=source.failing_since,
                last_error=source.last_error,
                last_success_at=source.last_success_at,
            )
            for source in MetricSource.objects.all()
        ]
    )


def copy_health_back(apps, schema_editor):
    MetricSource = apps.get_model("catalog", "MetricSource")
    SourceHealth = apps.get_model("catalog", "SourceHealth")
    for health in SourceHealth.objects.all():
        MetricSource.objects.filter(pk=health.source_id).update(
            failing_since=health.failing_since,
            last_error=health.last_error,
            last_success_at=health.last_success_at,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="SourceHealth",
            fields=[
                (
                    "source",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="health",
                        serialize=False,
                        to="catalog.metricsource",
                    ),
                ),
                ("failing_since", models.DateTimeField(blank=True, null=True)),
                ("last_error", models.TextField(blank=True)),
                ("last_success_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "verbose_name_plural": "source health",
                "indexes": [
                    models.Index(
                        condition=models.Q(("failing_since__isnull", False)),
                        fields=["failing_since"],
                        name="source_failing",
                    )
                ],
            },
        ),
        migrations.RunPython(copy_health, copy_health_back),
        migrations.RemoveField(
            model_name="metricsource",
            name="failing_since",
        ),
        migrations.RemoveField(
            model_name="metricsource",
            name="last_error",
        ),
        migrations.RemoveField(
            model_name="metricsource",
            name="last_success_at",
        ),
    ]
