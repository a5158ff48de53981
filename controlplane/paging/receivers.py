"""Keeping alerts consistent when an Alertmanager integration goes: its open alerts are
resolved in the name of whoever deletes it (`actors.current()`), as a deleted rule's
are, since nothing could resolve them afterwards."""

from django.db.models.signals import pre_delete
from django.dispatch import receiver

from controlplane.alerting import lifecycle
from controlplane.catalog import actors
from controlplane.paging.models import AlertmanagerIntegration


@receiver(
    pre_delete, sender=AlertmanagerIntegration, dispatch_uid="paging.retire_deleted_integration"
)
def retire_deleted_integration(sender, instance: AlertmanagerIntegration, **_) -> None:
    lifecycle.retire_alertmanager_alerts(
        instance, f"Alertmanager integration {instance.slug} deleted", actors.current()
    )
