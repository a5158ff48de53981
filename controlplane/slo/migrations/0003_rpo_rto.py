"""RPO and RTO objectives (controlplane/slo/objectives.py): two SLI kinds measured from
job runs and alerts, the fields they need, and the current value an evaluation shows
(the age of the last good backup, the longest restore)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0001_initial"),
        ("slo", "0002_schedule"),
    ]

    operations = [
        migrations.AlterField(
            model_name="slo",
            name="kind",
            field=models.CharField(
                choices=[
                    ("ratio", "Ratio of counters (good or bad / total)"),
                    ("latency", "Latency (histogram bucket at a threshold)"),
                    ("threshold", "Threshold per time slice"),
                    ("rpo", "RPO: age of the last good backup, per time slice"),
                    ("rto", "RTO: restore time of drills and incidents"),
                ],
                default="ratio",
                max_length=16,
                verbose_name="SLI kind",
            ),
        ),
        migrations.AddField(
            model_name="slo",
            name="job",
            field=models.ForeignKey(
                blank=True,
                help_text="RPO: the backup monitor. RTO: the restore-drill monitor (kind restore).",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="slos",
                to="jobs.jobmonitor",
                verbose_name="job monitor",
            ),
        ),
        migrations.AddField(
            model_name="slo",
            name="incident_services",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text='RTO: slugs of the services whose critical alerts are incidents, e.g. ["api"].',
            ),
        ),
        migrations.AddField(
            model_name="slo",
            name="recovery_target",
            field=models.DurationField(
                blank=True,
                help_text="RPO: the oldest a backup may be (empty: 24 h). RTO: the longest a "
                "restore may take (empty: 4 h).",
                null=True,
                verbose_name="RPO or RTO",
            ),
        ),
        migrations.AddField(
            model_name="sloevaluation",
            name="current_value",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="sloevaluation",
            name="current_unit",
            field=models.CharField(blank=True, max_length=16),
        ),
        migrations.AddField(
            model_name="slosnapshot",
            name="current_value",
            field=models.FloatField(blank=True, null=True),
        ),
    ]
