"""The alert rules citing a runbook, for the runbook page's "linked from" list."""

from __future__ import annotations

from django.urls import reverse

from controlplane.alerting.models import AlertRule
from controlplane.catalog import tenancy
from runbooks.links import Link


def rules_citing(runbook, reader) -> list[Link]:
    """Rules that name the runbook, for its "linked from" list, within the reader's walls.

    A shared runbook is cited by rules of many organisations: only those of the
    reader's organisations are listed. Each links to the rule's alerts.
    """
    rules = tenancy.scope(
        AlertRule.objects.filter(runbook=runbook).order_by("key"),
        tenancy.organization_ids(reader),
    )
    return [
        Link(f"Alert rule {rule.key}: {rule.name}", f"{reverse('alerts:index')}?rule={rule.key}")
        for rule in rules
    ]
