"""Evaluation state apart from the rule; the timeline becomes the outbox."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


def copy_state(apps, schema_editor):
    """Each rule's evaluation state moves to its RuleEvaluation row; the events
    already on timelines were told by the signals of their day, so they are done."""
    AlertRule = apps.get_model("alerting", "AlertRule")
    RuleEvaluation = apps.get_model("alerting", "RuleEvaluation")
    AlertEvent = apps.get_model("alerting", "AlertEvent")
    RuleEvaluation.objects.bulk_create(
        [
            RuleEvaluation(
                rule_id=rule.pk,
                state=rule.state,
                instances=rule.instances,
                last_value=rule.last_value,
                last_error=rule.last_error,
                last_evaluated_at=rule.last_evaluated_at,
                due_at=rule.next_evaluation_at,
            )
            for rule in AlertRule.objects.all()
        ],
        batch_size=500,
    )
    AlertEvent.objects.update(dispatch="done", dispatch_note="before the outbox")


def copy_state_back(apps, schema_editor):
    AlertRule = apps.get_model("alerting", "AlertRule")
    RuleEvaluation = apps.get_model("alerting", "RuleEvaluation")
    for row in RuleEvaluation.objects.all():
        AlertRule.objects.filter(pk=row.rule_id).update(
            state=row.state,
            instances=row.instances,
            last_value=row.last_value,
            last_error=row.last_error,
            last_evaluated_at=row.last_evaluated_at,
            next_evaluation_at=row.due_at,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("alerting", "0002_schedules_and_builtin_rules"),
    ]

    operations = [
        migrations.CreateModel(
            name="RuleEvaluation",
            fields=[
                (
                    "rule",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="evaluation",
                        serialize=False,
                        to="alerting.alertrule",
                    ),
                ),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("inactive", "Inactive"),
                            ("pending", "Pending"),
                            ("firing", "Firing"),
                            ("unknown", "Unknown (source failing)"),
                        ],
                        default="inactive",
                        max_length=16,
                    ),
                ),
                ("instances", models.JSONField(blank=True, default=list)),
                ("last_value", models.FloatField(blank=True, null=True)),
                ("last_error", models.TextField(blank=True)),
                ("last_evaluated_at", models.DateTimeField(blank=True, null=True)),
                ("slot_at", models.DateTimeField(blank=True, null=True)),
                ("due_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("claimed_until", models.DateTimeField(blank=True, null=True)),
                ("claim_token", models.CharField(blank=True, db_index=True, max_length=32)),
            ],
        ),
        migrations.AddField(
            model_name="alertevent",
            name="details",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="alertevent",
            name="dispatch",
            field=models.CharField(
                choices=[
                    ("pending", "Waiting for its consumers"),
                    ("done", "Taken by its consumers"),
                    ("failed", "A consumer failed: see the note"),
                ],
                default="pending",
                editable=False,
                max_length=8,
            ),
        ),
        migrations.AddField(
            model_name="alertevent",
            name="dispatch_attempts",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.AddField(
            model_name="alertevent",
            name="dispatch_claimed_until",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="alertevent",
            name="dispatch_note",
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.AddField(
            model_name="alertevent",
            name="dispatch_token",
            field=models.CharField(blank=True, editable=False, max_length=32),
        ),
        migrations.AddField(
            model_name="alertevent",
            name="dispatched_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddIndex(
            model_name="alertevent",
            index=models.Index(
                condition=models.Q(("dispatch", "pending")),
                fields=["alert", "id"],
                name="alert_event_undispatched",
            ),
        ),
        migrations.AddIndex(
            model_name="alertevent",
            index=models.Index(
                condition=models.Q(("dispatch", "pending")),
                fields=["dispatch_token"],
                name="alert_event_claim",
            ),
        ),
        migrations.AddIndex(
            model_name="ruleevaluation",
            index=models.Index(fields=["due_at"], name="rule_evaluation_due"),
        ),
        migrations.RunPython(copy_state, copy_state_back),
        migrations.RemoveIndex(
            model_name="alertrule",
            name="rule_due",
        ),
        migrations.RemoveField(
            model_name="alertrule",
            name="claim_token",
        ),
        migrations.RemoveField(
            model_name="alertrule",
            name="claimed_until",
        ),
        migrations.RemoveField(
            model_name="alertrule",
            name="instances",
        ),
        migrations.RemoveField(
            model_name="alertrule",
            name="last_error",
        ),
        migrations.RemoveField(
            model_name="alertrule",
            name="last_evaluated_at",
        ),
        migrations.RemoveField(
            model_name="alertrule",
            name="last_value",
        ),
        migrations.RemoveField(
            model_name="alertrule",
            name="next_evaluation_at",
        ),
        migrations.RemoveField(
            model_name="alertrule",
            name="state",
        ),
    ]
