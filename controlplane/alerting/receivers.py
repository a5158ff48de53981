"""Keeping alerts and rules consistent when the things around them change.

Built-in rules follow organisations and their first metric source; silences
apply to alerts already open, and release them when deleted; a disabled or
deleted rule resolves its alerts. The changes they make are recorded in the name of
whoever is acting (`actors.current()`: the request's user or token), not the system's.
"""

from django.db.models.signals import post_save, pre_delete
from django.dispatch import receiver
from django.utils import timezone

from controlplane.alerting import evaluation, lifecycle
from controlplane.alerting.builtin import seed_rules
from controlplane.alerting.models import LONGEST_INTERVAL, AlertRule, RuleEvaluation, Silence
from controlplane.catalog import actors
from controlplane.catalog.models import MetricSource, Organization


@receiver(post_save, sender=Organization, dispatch_uid="alerting.seed_on_organization")
def seed_for_new_organization(sender, instance: Organization, created: bool, raw=False, **_):
    if created and not raw:
        seed_rules(instance)


@receiver(post_save, sender=MetricSource, dispatch_uid="alerting.seed_on_source")
def seed_for_first_source(sender, instance: MetricSource, created: bool, raw=False, **_):
    if created and not raw:
        seed_rules(instance.organization)


@receiver(post_save, sender=Silence, dispatch_uid="alerting.apply_silence")
def apply_saved_silence(sender, instance: Silence, raw=False, **_):
    if not raw:
        lifecycle.refresh_silence(instance, actors.current())


@receiver(pre_delete, sender=Silence, dispatch_uid="alerting.lift_deleted_silence")
def lift_deleted_silence(sender, instance: Silence, **_):
    lifecycle.lift_silence(instance, "silence deleted", actors.current())


@receiver(post_save, sender=AlertRule, dispatch_uid="alerting.rule_saved")
def rule_saved(sender, instance: AlertRule, created: bool, raw=False, **_):
    if raw:
        return
    if created:
        # Due at once; the tick also creates rows that bulk_create skipped.
        RuleEvaluation.objects.get_or_create(rule=instance)
    if not instance.enabled:
        evaluation.retire(instance, "rule disabled", actors.current())
        return
    # Enabled again, or its interval shortened: a next slot further off than one
    # interval comes in to now. Compare-and-set on the schedule alone: the
    # evaluation state stays the evaluator's.
    now = timezone.now()
    interval = min(instance.interval or LONGEST_INTERVAL, LONGEST_INTERVAL)
    RuleEvaluation.objects.filter(rule=instance, due_at__gt=now + interval).update(due_at=now)


@receiver(pre_delete, sender=AlertRule, dispatch_uid="alerting.retire_deleted_rule")
def retire_deleted_rule(sender, instance: AlertRule, **_):
    evaluation.retire(instance, "rule deleted", actors.current())
