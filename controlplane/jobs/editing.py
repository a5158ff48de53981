"""The one way a job monitor's definition is saved, whoever does it (admin, API).

Here its state row is made, and here an edited schedule moves the next expected run
to the new schedule (else the old schedule's next slot would be reported missed). The
save records itself in the audit trail (audit/audited.py), in the name of `actor`.
"""

from __future__ import annotations

from django.db import transaction

from controlplane.catalog.actors import Actor, acting
from controlplane.jobs import runs
from controlplane.jobs.models import JobMonitor

SCHEDULE_FIELDS = ("schedule_kind", "cron", "period", "time_zone")


def save(monitor: JobMonitor, actor: Actor) -> JobMonitor:
    """Save a checked monitor (its clean() passed) and keep its state in step."""
    before = (
        JobMonitor.objects.filter(pk=monitor.pk).values(*SCHEDULE_FIELDS).first()
        if monitor.pk
        else None
    )
    with transaction.atomic(), acting(actor):
        monitor.save()
        runs.ensure_state(monitor)
    if before is not None and any(before[f] != getattr(monitor, f) for f in SCHEDULE_FIELDS):
        runs.reschedule(monitor, actor)
    return monitor
