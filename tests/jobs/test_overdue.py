"""Beat's overdue check: missed slots (across the 2026 DST changes, with fixed times) and
runs past their maximum duration, each recorded once, even by workers racing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from prometheus_client import REGISTRY

from controlplane.catalog.actors import BEAT, Actor
from controlplane.jobs import overdue, runs
from controlplane.jobs.metrics import job_label
from controlplane.jobs.models import JobMonitor, JobMonitorState, JobRun
from controlplane.jobs.runs import Ping
from tests.factories import make_job
from tests.races import race
from tests.services import require_postgresql

PINGS = Actor.system("jobs.ping")
Status = JobMonitorState.Status
Outcome = JobRun.Outcome


def utc(month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


SLOT = utc(4, 1, 2)


def minutes(count: float) -> timedelta:
    return timedelta(minutes=count)


def record(monitor, kind, at, **fields):
    return runs.record_ping(monitor, Ping(kind, at, **fields), PINGS)


def state_of(monitor) -> JobMonitorState:
    return JobMonitorState.objects.get(pk=monitor.pk)


def missed_runs(monitor) -> list[JobRun]:
    return list(JobRun.objects.filter(monitor=monitor, outcome=Outcome.MISSED))


# Pure decisions -------------------------------------------------------------------


def _monitor(**fields) -> JobMonitor:
    values = {"cron": "0 2 * * *", "time_zone": "UTC", "schedule_kind": "cron"}
    return JobMonitor(slug="payroll-export", grace=minutes(15), **(values | fields))


@pytest.mark.parametrize(
    ("status", "next_expected", "now", "expected"),
    [
        # Not yet past schedule + grace.
        (Status.UP, SLOT, SLOT + minutes(14), None),
        # At the deadline: missed; the next slot is tomorrow's.
        (Status.UP, SLOT, SLOT + minutes(15), (SLOT, SLOT + timedelta(days=1))),
        (Status.FAILED, SLOT, SLOT + minutes(16), (SLOT, SLOT + timedelta(days=1))),
        # Late already, the next slot passed too: missed again.
        (Status.LATE, SLOT, SLOT + timedelta(hours=1), (SLOT, SLOT + timedelta(days=1))),
        # Beat slept three days: one missed run, the next slot ahead of now.
        (Status.UP, SLOT, SLOT + timedelta(days=3, hours=1), (SLOT, SLOT + timedelta(days=4))),
        # Three days and ten minutes: today's slot is still within its grace.
        (Status.UP, SLOT, SLOT + timedelta(days=3, minutes=10), (SLOT, SLOT + timedelta(days=3))),
        # Still running at the next slot's deadline: the run hung after its start, and
        # the next one did not start (its own slot was served: next_expected moved on).
        (Status.RUNNING, SLOT, SLOT + minutes(14), None),
        (Status.RUNNING, SLOT, SLOT + minutes(15), (SLOT, SLOT + timedelta(days=1))),
        # Paused, or never run (no next expected start): never late.
        (Status.PAUSED, SLOT, SLOT + timedelta(days=1), None),
        (Status.NEW, None, SLOT + timedelta(days=1), None),
    ],
)
def test_missed(status, next_expected, now, expected):
    state = JobMonitorState(status=status, next_expected=next_expected)
    found = overdue.missed(_monitor(), state, now)
    if expected is None:
        assert found is None
    else:
        assert (found.slot, found.next_expected) == expected
        assert found.deadline == found.slot + minutes(15)


def test_missed_on_a_period_schedule_moves_by_periods():
    monitor = _monitor(schedule_kind="period", period=timedelta(hours=6), cron="")
    state = JobMonitorState(status=Status.UP, next_expected=SLOT)
    found = overdue.missed(monitor, state, SLOT + minutes(20))
    assert found.next_expected == SLOT + timedelta(hours=6)
    found = overdue.missed(monitor, state, SLOT + timedelta(hours=7))
    assert found.next_expected == SLOT + timedelta(hours=12)


@pytest.mark.parametrize(
    ("max_duration", "open_for", "status", "expected"),
    [
        (minutes(60), minutes(60), Status.RUNNING, False),
        (minutes(60), minutes(61), Status.RUNNING, True),
        # Without a maximum: the 72 h pairing window.
        (None, timedelta(hours=71), Status.RUNNING, False),
        (None, timedelta(hours=73), Status.RUNNING, True),
        (minutes(60), minutes(61), Status.PAUSED, False),
    ],
)
def test_timed_out(max_duration, open_for, status, expected):
    run = JobRun(started_at=SLOT, outcome="")
    state = JobMonitorState(status=status)
    monitor = _monitor(max_duration=max_duration)
    assert overdue.timed_out(monitor, state, run, SLOT + open_for) is expected


# check() on the database -----------------------------------------------------------


def test_a_missed_slot_is_recorded_once(org):
    monitor = make_job(org)
    record(monitor, "success", SLOT - timedelta(days=1, minutes=-5))
    tomorrow = SLOT
    assert state_of(monitor).next_expected == tomorrow
    before = (
        REGISTRY.get_sample_value(
            "controlplane_job_runs_total", {"job": job_label(monitor), "outcome": "missed"}
        )
        or 0.0
    )
    assert overdue.check(tomorrow + minutes(14), BEAT) == overdue.Checked()
    assert state_of(monitor).status == Status.UP
    checked = overdue.check(tomorrow + minutes(15), BEAT)
    assert (checked.missed, checked.overdue) == (1, 1)
    (run,) = missed_runs(monitor)
    assert (run.started_at, run.finished_at, run.created_at) == (None, None, SLOT + minutes(15))
    assert "2026-04-01T02:00:00+00:00" in run.excerpt
    state = state_of(monitor)
    assert (state.status, state.last_outcome) == (Status.LATE, Outcome.MISSED)
    assert state.next_expected == SLOT + timedelta(days=1)
    # Once per slot.
    assert overdue.check(tomorrow + minutes(30), BEAT).missed == 0
    assert len(missed_runs(monitor)) == 1
    assert REGISTRY.get_sample_value("controlplane_jobs_overdue") == 1
    assert (
        REGISTRY.get_sample_value(
            "controlplane_job_runs_total", {"job": job_label(monitor), "outcome": "missed"}
        )
        == before + 1
    )
    # The late run comes: running, then up; the missed slot is not reported again.
    record(monitor, "start", SLOT + timedelta(hours=1))
    record(monitor, "success", SLOT + timedelta(hours=1, minutes=5))
    assert state_of(monitor).status == Status.UP
    assert overdue.check(SLOT + timedelta(hours=2), BEAT).overdue == 0
    assert state_of(monitor).next_expected == SLOT + timedelta(days=1)


# Daily at 02:00 local time, across the 2026 DST changes: (zone, the last run's start,
# the next slot in UTC, the slot after it in UTC).
DST_CASES = [
    # Paris springs forward on 29 March: 02:00 does not exist, the run is due at 03:00
    # CEST (01:00 UTC); the next day 02:00 CEST is 00:00 UTC.
    ("Europe/Paris", utc(3, 28, 1), utc(3, 29, 1), utc(3, 30, 0)),
    # Paris falls back on 25 October: 02:00 CEST (00:00 UTC), then 02:00 CET on the
    # 26th (01:00 UTC); the second 02:00 of the 25th (01:00 UTC) is no slot.
    ("Europe/Paris", utc(10, 24, 0), utc(10, 25, 0), utc(10, 26, 1)),
    # New York springs forward on 8 March: 03:00 EDT (07:00 UTC), then 06:00 UTC.
    ("America/New_York", utc(3, 7, 7), utc(3, 8, 7), utc(3, 9, 6)),
    # New York falls back on 1 November: 02:00 EST is 07:00 UTC.
    ("America/New_York", utc(10, 31, 6), utc(11, 1, 7), utc(11, 2, 7)),
]


@pytest.mark.parametrize(("zone", "last", "slot", "following"), DST_CASES)
def test_late_detection_across_dst(org, zone, last, slot, following):
    monitor = make_job(org, time_zone=zone)
    record(monitor, "start", last)
    record(monitor, "success", last + minutes(5))
    assert state_of(monitor).next_expected == slot
    assert overdue.check(slot + minutes(14), BEAT).missed == 0
    assert overdue.check(slot + minutes(15), BEAT).missed == 1
    assert state_of(monitor).status == Status.LATE
    assert state_of(monitor).next_expected == following
    # Nothing more until the following slot's deadline, an hour of DST included.
    assert overdue.check(following + minutes(14), BEAT).missed == 0
    assert overdue.check(following + minutes(15), BEAT).missed == 1
    assert len(missed_runs(monitor)) == 2


@pytest.mark.parametrize(("zone", "last", "slot", "following"), DST_CASES)
def test_a_run_on_the_dst_day_is_on_time(org, zone, last, slot, following):
    monitor = make_job(org, time_zone=zone)
    record(monitor, "success", last + minutes(5))
    run = record(monitor, "start", slot + minutes(1))
    assert run.too_early is False
    record(monitor, "success", slot + minutes(6))
    assert state_of(monitor).next_expected == following
    assert overdue.check(following - minutes(1), BEAT).missed == 0
    assert state_of(monitor).status == Status.UP


def test_a_running_monitor_is_not_late_for_its_own_slot_and_paused_and_new_never_are(org):
    running = make_job(org, "running")
    record(running, "start", SLOT)
    paused = make_job(org, "paused", state={"next_expected": SLOT})
    runs.pause(paused, PINGS, now=SLOT)
    make_job(org, "new")
    assert overdue.check(SLOT + timedelta(hours=12), BEAT).missed == 0
    assert JobRun.objects.filter(outcome=Outcome.MISSED).count() == 0


def test_the_late_finish_of_a_timed_out_run_resumes_a_paused_monitor(org):
    monitor = make_job(org, max_duration=minutes(60))
    record(monitor, "start", SLOT)
    overdue.check(SLOT + minutes(61), BEAT)
    runs.pause(monitor, PINGS, now=SLOT + minutes(62))

    record(monitor, "success", SLOT + minutes(70))

    state = state_of(monitor)
    assert (state.status, state.last_outcome) == (Status.FAILED, Outcome.TIMEOUT)


def test_a_run_that_hangs_after_its_start_makes_the_monitor_late_at_the_next_slot(org):
    # Daily at 02:00 with 15 minutes' grace and no maximum duration: a job that hung
    # after /start is reported when tomorrow's run does not start, not three days later.
    hung = make_job(org, "hung")
    record(hung, "start", SLOT)
    tomorrow = SLOT + timedelta(days=1)
    assert overdue.check(tomorrow + minutes(14), BEAT).missed == 0
    assert overdue.check(tomorrow + minutes(15), BEAT).missed == 1
    assert state_of(hung).status == Status.LATE
    assert JobRun.objects.get(monitor=hung, outcome=Outcome.MISSED)


def test_an_open_run_past_its_maximum_duration_times_out(org):
    monitor = make_job(org, max_duration=minutes(60))
    run = record(monitor, "start", SLOT)
    assert overdue.check(SLOT + minutes(60), BEAT).timed_out == 0
    checked = overdue.check(SLOT + minutes(61), BEAT)
    assert checked.timed_out == 1
    run.refresh_from_db()
    assert (run.outcome, run.finished_at) == (Outcome.TIMEOUT, None)
    state = state_of(monitor)
    assert (state.status, state.last_outcome) == (Status.FAILED, Outcome.TIMEOUT)
    assert state.last_failure == SLOT + minutes(60)
    assert overdue.check(SLOT + minutes(90), BEAT).timed_out == 0
    # The finish comes after all: the record is completed, the outcome kept.
    record(monitor, "success", SLOT + minutes(95))
    run.refresh_from_db()
    assert (run.outcome, run.duration) == (Outcome.TIMEOUT, minutes(95))
    assert state_of(monitor).status == Status.FAILED


def test_two_open_runs_of_one_monitor_time_out_in_one_check(org):
    monitor = make_job(org, max_duration=minutes(60))
    import uuid

    record(monitor, "start", SLOT, run_id=uuid.uuid4())
    record(monitor, "start", SLOT + minutes(1), run_id=uuid.uuid4())
    assert overdue.check(SLOT + minutes(70), BEAT).timed_out == 2
    assert JobRun.objects.filter(outcome=Outcome.TIMEOUT).count() == 2


def test_a_ping_between_the_read_and_the_write_wins(org):
    monitor = make_job(org, state={"status": Status.UP, "next_expected": SLOT})
    stale = state_of(monitor)
    found = overdue.missed(monitor, stale, SLOT + minutes(20))
    record(monitor, "start", SLOT + minutes(19))
    assert overdue._record_missed(monitor, stale, found, SLOT + minutes(20)) is False
    assert missed_runs(monitor) == []
    assert state_of(monitor).status == Status.RUNNING


# PostgreSQL: workers racing ------------------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_racing_checks_record_each_change_once(org):
    require_postgresql()
    late = make_job(org, "late-job", state={"status": Status.UP, "next_expected": SLOT})
    slow = make_job(org, "slow-job", max_duration=minutes(60))
    record(slow, "start", SLOT)
    results = race(8, lambda: overdue.check(SLOT + minutes(90), BEAT))
    assert sum(checked.missed for checked in results) == 1
    assert sum(checked.timed_out for checked in results) == 1
    assert len(missed_runs(late)) == 1
    assert JobRun.objects.filter(monitor=slow, outcome=Outcome.TIMEOUT).count() == 1
    assert state_of(late).version == 1
    assert state_of(slow).status == Status.FAILED


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_racing_pings_with_one_run_id_record_one_run(org):
    require_postgresql()
    import uuid

    monitor = make_job(org)
    rid = uuid.uuid4()
    record(monitor, "start", SLOT, run_id=rid)
    results = race(8, lambda: record(monitor, "success", SLOT + minutes(5), run_id=rid))
    assert len({run.pk for run in results}) == 1
    assert JobRun.objects.filter(monitor=monitor).count() == 1
    assert state_of(monitor).version == 2
    starts = race(
        8, lambda: record(monitor, "start", SLOT + timedelta(days=1), run_id=uuid.uuid4())
    )
    assert len({run.pk for run in starts}) == 8
    assert state_of(monitor).status == Status.RUNNING
    assert state_of(monitor).version == 10


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_check_racing_a_finish_leaves_one_outcome(org):
    require_postgresql()
    monitor = make_job(org, max_duration=minutes(60))
    record(monitor, "start", SLOT)
    now = SLOT + minutes(61)

    def finish():
        return record(monitor, "success", now)

    def check():
        return overdue.check(now, BEAT)

    barrier = threading.Barrier(2)
    results, errors = {}, []

    def run(name, work):
        try:
            barrier.wait(timeout=10)
            results[name] = work()
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=pair) for pair in (("ping", finish), ("check", check))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    (run_row,) = JobRun.objects.filter(monitor=monitor)
    # Either order ends with one timeout: a success 61 minutes in is a timeout too.
    assert run_row.outcome == Outcome.TIMEOUT
    assert run_row.finished_at in (now, None)
    assert state_of(monitor).status == Status.FAILED
