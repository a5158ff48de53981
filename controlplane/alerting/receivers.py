"""Built-in rules follow organisations and their first metric source."""

from django.db.models.signals import post_save
from django.dispatch import receiver

from controlplane.alerting.builtin import seed_rules
from controlplane.catalog.models import MetricSource, Organization


@receiver(post_save, sender=Organization, dispatch_uid="alerting.seed_on_organization")
def seed_for_new_organization(sender, instance: Organization, created: bool, raw=False, **_):
    if created and not raw:
        seed_rules(instance)


@receiver(post_save, sender=MetricSource, dispatch_uid="alerting.seed_on_source")
def seed_for_first_source(sender, instance: MetricSource, created: bool, raw=False, **_):
    if created and not raw:
        seed_rules(instance.organization)
