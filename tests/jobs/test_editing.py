"""Editing a monitor's schedule moves its next expected run to the new schedule, through
the one recorder the admin and the API share (else the old schedule's next slot would be
reported missed)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from controlplane.catalog.actors import Actor
from controlplane.jobs import editing, overdue
from controlplane.jobs.models import JobMonitor, JobMonitorState, JobRun
from tests.factories import make_job

MANAGER = Actor.system("tests")


def test_a_schedule_edit_expects_the_next_run_on_the_new_schedule(org):
    now = timezone.now()
    old_slot = now + timedelta(hours=1)
    monitor = make_job(
        org,
        schedule_kind=JobMonitor.Schedule.PERIOD,
        cron="",
        period=timedelta(hours=1),
        grace=timedelta(minutes=5),
        state={"status": "up", "next_expected": old_slot},
    )
    monitor.period = timedelta(days=1)

    editing.save(monitor, MANAGER)

    expected = JobMonitorState.objects.get(monitor=monitor).next_expected
    assert now + timedelta(days=1) <= expected <= timezone.now() + timedelta(days=1)
    # The old schedule's slot passing is no missed run.
    overdue.check(old_slot + timedelta(minutes=30), MANAGER)
    assert not JobRun.objects.filter(monitor=monitor, outcome="missed").exists()


def test_an_edit_of_anything_else_leaves_the_expected_run_alone(org):
    expected = timezone.now() + timedelta(hours=1)
    monitor = make_job(org, state={"status": "up", "next_expected": expected})
    monitor.name = "Renamed"

    editing.save(monitor, MANAGER)

    assert JobMonitorState.objects.get(monitor=monitor).next_expected == expected
