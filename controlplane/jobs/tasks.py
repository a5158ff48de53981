"""Celery tasks of job monitors; the schedule lives in django-celery-beat (seeded by
jobs/migrations/0002_check_and_builtin_rule.py)."""

from __future__ import annotations

import dataclasses

from celery import shared_task
from django.utils import timezone

from controlplane.catalog.actors import Actor
from controlplane.jobs import overdue

CHECKER = Actor.system("jobs.check")


@shared_task(name="jobs.check_job_monitors", ignore_result=True)
def check_job_monitors() -> dict[str, int]:
    """Beat's run (every 30 s): runs that missed their schedule plus grace become
    `missed` and their monitors late; open runs past their maximum duration time out.
    Nothing is sent from here: the built-in rule `etl.job.failure` reads the new
    states (jobs.signals) and its alert goes through the alerting outbox, so a crash
    between this change and the page loses nothing."""
    return dataclasses.asdict(overdue.check(timezone.now(), CHECKER))
