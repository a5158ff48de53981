"""The audit trail's beat tasks: the sealing backstop and `audit.retention.job`."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="audit.seal_events")
def seal_events() -> int:
    """Seal what a process recorded and did not live to seal (sealing.py)."""
    from controlplane.audit.sealing import seal_all

    return seal_all()


@shared_task(name="audit.retention")
def retention() -> dict:
    """Remove what is older than its retention, every organisation (audit/job.py)."""
    from controlplane.audit.job import run

    return run()
