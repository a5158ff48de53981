"""Celery tasks of on-call; the schedule lives in django-celery-beat (seeded by
oncall/migrations/0002_schedules.py)."""

from __future__ import annotations

from celery import shared_task

from controlplane.oncall import synchronize


@shared_task(name="calendar.synchronize", ignore_result=True)
def synchronize_due() -> dict[str, list[str]]:
    """Beat's run (every 30 s, and a nudge after "synchronise now"): read the calendars
    of the schedules that are due, then set the metrics."""
    report = synchronize.run()
    return {"synchronized": report.synchronized, "failed": report.failed}
