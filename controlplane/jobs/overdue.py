"""Beat's overdue check: runs that never started, and runs that never finished.

`missed()` and `timed_out()` are pure decisions on one monitor; `check()` finds the
candidates, applies each decision in its own transaction with a compare-and-set on the
state's `version` (so two workers checking at once record one change, and a ping that
lands meanwhile wins), and sets the `controlplane_jobs_overdue` gauge and the monitors'
duration-limit and RPO gauges (metrics.refresh_limits).

- Missed: a monitor that is not running nor paused and has a next expected start
  (a new monitor has none until its first run) is late once that start plus the grace
  time has passed. One `missed` run is recorded for that slot, the status becomes
  `late`, and the next expected start moves to the first slot whose deadline is still
  ahead: slots the check slept through (beat down for a day) are counted in that one
  missed run, not one run each.
- Timed out: an open run started more than the maximum duration ago (72 h, the
  pairing window, when the monitor has none) gets the outcome `timeout` and the
  monitor the status `failed`. The run stays unfinished: a finish that comes later
  completes it (runs.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction

from controlplane.catalog.actors import Actor
from controlplane.jobs import metrics, schedule, trouble
from controlplane.jobs.models import JobMonitor, JobMonitorState, JobRun
from controlplane.jobs.runs import effective_max_duration
from observability import tracing

log = logging.getLogger(__name__)
Status = JobMonitorState.Status
Outcome = JobRun.Outcome


@dataclass(frozen=True)
class Checked:
    missed: int = 0
    timed_out: int = 0
    # Changes another worker (or a ping) made first: left to it.
    conflicts: int = 0
    # Monitors late after the check (the gauge's value).
    overdue: int = 0


@dataclass(frozen=True)
class Missed:
    slot: datetime
    deadline: datetime
    next_expected: datetime


def missed(monitor: JobMonitor, state: JobMonitorState, now: datetime) -> Missed | None:
    """The slot the monitor missed by `now`, if any, and its next expected start."""
    # A running monitor is not spared: its run served an earlier slot (next_expected has
    # moved past it), so a run still open at the next slot's deadline is a job that hung
    # after its start, and the next run did not start: late, as Healthchecks says down.
    if state.status == Status.PAUSED or state.next_expected is None:
        return None
    slot = state.next_expected
    deadline = slot + monitor.grace
    if now < deadline:
        return None
    following = schedule.following_slot(monitor, slot, now - monitor.grace)
    return Missed(slot=slot, deadline=deadline, next_expected=following)


def timed_out(monitor: JobMonitor, state: JobMonitorState, run: JobRun, now: datetime) -> bool:
    if state.status == Status.PAUSED or run.outcome or run.started_at is None:
        return False
    return now > run.started_at + effective_max_duration(monitor)


def _missed_note(monitor: JobMonitor, found: Missed) -> str:
    zone = monitor.time_zone if monitor.schedule_kind == JobMonitor.Schedule.CRON else "UTC"
    return (
        f"No run started for the slot at {found.slot.isoformat()} ({zone}) within the grace "
        f"time (by {found.deadline.isoformat()}). Next expected at "
        f"{found.next_expected.isoformat()}."
    )


def _set_state(
    state: JobMonitorState, changes: dict[str, Any], now: datetime, trace_id: str = ""
) -> bool:
    changes = {**changes, **trouble.follow(state, changes, trace_id)}
    updated = JobMonitorState.objects.filter(pk=state.pk, version=state.version).update(
        **changes, version=state.version + 1, changed_at=now
    )
    if updated:
        # Later changes of this check to the same monitor compare against this one.
        state.version += 1
        for name, value in changes.items():
            setattr(state, name, value)
    return bool(updated)


def _record_missed(monitor: JobMonitor, state: JobMonitorState, found: Missed, now) -> bool:
    with transaction.atomic():
        if not _set_state(
            state,
            {
                "status": Status.LATE,
                "last_outcome": Outcome.MISSED,
                "next_expected": found.next_expected,
            },
            now,
            # No run to trace: the check's own trace (beat's task) is where it was seen.
            tracing.current_trace_id() or "",
        ):
            return False
        JobRun.objects.create(
            monitor=monitor,
            outcome=Outcome.MISSED,
            excerpt=_missed_note(monitor, found),
            created_at=now,
        )
    metrics.job_runs.labels(job=metrics.job_label(monitor), outcome=Outcome.MISSED).inc()
    return True


def _record_timeout(monitor: JobMonitor, state: JobMonitorState, run: JobRun, now) -> bool:
    timed_out_at = run.started_at + effective_max_duration(monitor)
    with transaction.atomic():
        if not _set_state(
            state,
            {
                "status": Status.FAILED,
                "last_outcome": Outcome.TIMEOUT,
                "last_failure": timed_out_at,
            },
            now,
            run.trace_id,
        ):
            return False
        if not JobRun.objects.filter(pk=run.pk, outcome="").update(outcome=Outcome.TIMEOUT):
            # The state's version guards the run too; this is belt and braces.
            transaction.set_rollback(True)
            return False
    metrics.job_runs.labels(job=metrics.job_label(monitor), outcome=Outcome.TIMEOUT).inc()
    return True


def check(now: datetime, actor: Actor) -> Checked:
    """Record the runs missed and timed out by `now`; return the counts."""
    missed_count = timed_out_count = conflicts = 0
    open_runs = (
        JobRun.objects.filter(outcome="", started_at__isnull=False, monitor__state__isnull=False)
        .exclude(monitor__state__status=Status.PAUSED)
        .select_related("monitor", "monitor__state", "monitor__organization")
        .order_by("started_at", "pk")
    )
    # One state object per monitor, so that its second timed-out run compares against
    # the version its first one set.
    states: dict[int, JobMonitorState] = {}
    for run in open_runs:
        monitor = run.monitor
        state = states.setdefault(monitor.pk, monitor.state)
        if not timed_out(monitor, state, run, now):
            continue
        if _record_timeout(monitor, state, run, now):
            timed_out_count += 1
        else:
            conflicts += 1
    due = (
        JobMonitorState.objects.filter(next_expected__lte=now)
        .exclude(status=Status.PAUSED)
        .select_related("monitor", "monitor__organization")
        .order_by("next_expected", "pk")
    )
    for state in due:
        found = missed(state.monitor, state, now)
        if found is None:
            continue
        if _record_missed(state.monitor, state, found, now):
            missed_count += 1
        else:
            conflicts += 1
    overdue = JobMonitorState.objects.filter(status=Status.LATE).count()
    metrics.jobs_overdue.set(overdue)
    # The limits the dashboards draw against each monitor's runs, refreshed with its count.
    metrics.refresh_limits()
    if missed_count or timed_out_count or conflicts:
        log.info(
            "job overdue check by %s: %d missed, %d timed out, %d left to another writer",
            actor.spec,
            missed_count,
            timed_out_count,
            conflicts,
        )
    return Checked(
        missed=missed_count, timed_out=timed_out_count, conflicts=conflicts, overdue=overdue
    )
