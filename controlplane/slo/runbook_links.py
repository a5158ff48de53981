"""The SLOs citing a runbook, for the runbook page's "linked from" list."""

from __future__ import annotations

from django.db.models import Q

from controlplane.catalog import tenancy
from controlplane.slo import objectives
from controlplane.slo.alerts import RUNBOOK
from controlplane.slo.models import SLO
from runbooks.links import Link


def slos_citing(runbook, reader) -> list[Link]:
    """SLOs that name the runbook, within the reader's walls; the shared `slo-burn-rate`
    runbook is also cited by every SLO that names none (their alerts link it)."""
    citing = Q(runbook=runbook)
    if runbook.slug == RUNBOOK and runbook.organization_id is None:
        citing |= Q(runbook__isnull=True) & ~Q(kind__in=objectives.KINDS)
    # RPO and RTO objectives link `slo-objectives` instead (alerts.runbook_url).
    if runbook.slug == objectives.RUNBOOK and runbook.organization_id is None:
        citing |= Q(runbook__isnull=True, kind__in=objectives.KINDS)
    slos = tenancy.scope(
        SLO.objects.filter(citing).select_related("organization").order_by("slug", "pk"),
        tenancy.organization_ids(reader),
    )
    return [
        Link(
            f"SLO {slo.slug}: {slo.name}",
            f"{slo.get_absolute_url()}?organization={slo.organization.slug}",
        )
        for slo in slos
    ]
