"""Keeping alerts and rules consistent when the things around them change.

Built-in rules follow organisations and their first metric source; silences
apply to alerts already open, and release them when deleted; a disabled or
deleted rule resolves its alerts.
"""

from django.db.models.signals import post_save, pre_delete
from django.dispatch import receiver

from controlplane.alerting import lifecycle
from controlplane.alerting.builtin import seed_rules
from controlplane.alerting.models import AlertRule, Silence
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
        lifecycle.refresh_silence(instance)


@receiver(pre_delete, sender=Silence, dispatch_uid="alerting.lift_deleted_silence")
def lift_deleted_silence(sender, instance: Silence, **_):
    lifecycle.lift_silence(instance, "silence deleted")


@receiver(post_save, sender=AlertRule, dispatch_uid="alerting.retire_disabled_rule")
def retire_disabled_rule(sender, instance: AlertRule, raw=False, **_):
    if not raw and not instance.enabled:
        lifecycle.retire_rule_alerts(instance, "rule disabled")
        if instance.instances or instance.state != AlertRule.State.INACTIVE:
            AlertRule.objects.filter(pk=instance.pk).update(
                instances=[], state=AlertRule.State.INACTIVE
            )


@receiver(pre_delete, sender=AlertRule, dispatch_uid="alerting.retire_deleted_rule")
def retire_deleted_rule(sender, instance: AlertRule, **_):
    lifecycle.retire_rule_alerts(instance, "rule deleted")
