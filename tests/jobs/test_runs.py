"""Pings in every order: the pure decisions (outcome, excerpt, too early) as tables, then
record_ping on the database (pairing, run ids, statuses, metrics)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from controlplane.catalog.actors import Actor
from controlplane.jobs import overdue, runs
from controlplane.jobs.metrics import job_label
from controlplane.jobs.models import EXCERPT_LIMIT, JobMonitor, JobMonitorState, JobRun
from controlplane.jobs.runs import Ping
from tests.factories import make_job

PINGS = Actor.system("jobs.ping")
Status = JobMonitorState.Status
Outcome = JobRun.Outcome
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def utc(month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


# Daily at 02:00 UTC (make_job's default), 15 minutes' grace.
SLOT = utc(4, 1, 2)


def minutes(count: float) -> timedelta:
    return timedelta(minutes=count)


def monitor_for(
    min_duration: timedelta | None = None, max_duration: timedelta | None = None, **fields
) -> JobMonitor:
    values = {
        "slug": "payroll-export",
        "cron": "0 2 * * *",
        "time_zone": "UTC",
        "schedule_kind": "cron",
        "grace": minutes(15),
        "min_duration": min_duration,
        "max_duration": max_duration,
    }
    return JobMonitor(**(values | fields))


# Pure decisions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "exit_code", "duration", "expected"),
    [
        # Without a start the duration is unknown: never too fast nor timed out.
        ("success", None, None, Outcome.SUCCESS),
        ("success", None, minutes(10), Outcome.SUCCESS),
        ("exit", 0, minutes(10), Outcome.SUCCESS),
        ("exit", 3, minutes(10), Outcome.FAILURE),
        ("exit", 255, None, Outcome.FAILURE),
        ("fail", None, minutes(10), Outcome.FAILURE),
        # Under the minimum (5 min) or over the maximum (60 min) duration.
        ("success", None, minutes(4), Outcome.TOO_FAST),
        ("exit", 0, minutes(4), Outcome.TOO_FAST),
        ("success", None, minutes(5), Outcome.SUCCESS),
        ("success", None, minutes(60), Outcome.SUCCESS),
        ("success", None, minutes(61), Outcome.TIMEOUT),
        # A failure is a failure, however long it ran.
        ("fail", None, minutes(4), Outcome.FAILURE),
        ("exit", 1, minutes(61), Outcome.FAILURE),
    ],
)
def test_outcome_of_a_finish(kind, exit_code, duration, expected):
    monitor = monitor_for(min_duration=minutes(5), max_duration=minutes(60))
    ping = Ping(kind, SLOT, exit_code=exit_code)
    assert runs.ping_outcome(monitor, ping, duration) == expected


@pytest.mark.parametrize(
    ("previous", "body", "body_truncated", "expected", "truncated"),
    [
        ("", "", False, "", False),
        ("", "hello", False, "hello", False),
        ("started", "done", False, "started\ndone", False),
        ("line 1\n", "line 2\n", False, "line 1\nline 2\n", False),
        ("", "x" * EXCERPT_LIMIT, False, "x" * EXCERPT_LIMIT, False),
        # Over the limit: the tail is kept, as the end of a log says why it stopped.
        ("", "a" + "x" * EXCERPT_LIMIT, False, "x" * EXCERPT_LIMIT, True),
        ("a" * 6000, "b" * 6000, False, ("a" * 6000 + "\n" + "b" * 6000)[-EXCERPT_LIMIT:], True),
        # The endpoint already cut the body: still truncated.
        ("", "tail", True, "tail", True),
        # PostgreSQL stores neither NUL nor lone surrogates.
        ("", "a\x00b\ud800c", False, "a\ufffdb?c", False),
    ],
)
def test_excerpt_keeps_the_tail(previous, body, body_truncated, expected, truncated):
    assert runs.excerpt(previous, False, body, body_truncated) == (expected, truncated)


def _run(started=None, finished=None, outcome="", run_id=None, pk=1) -> JobRun:
    return JobRun(pk=pk, run_id=run_id, started_at=started, finished_at=finished, outcome=outcome)


@pytest.mark.parametrize(
    ("previous", "at", "early"),
    [
        (None, SLOT, False),
        # Yesterday's run, today's slot.
        (_run(SLOT - timedelta(days=1), SLOT - timedelta(days=1), "success"), SLOT, False),
        # Today's 02:00 already ran: a second start at 14:00 comes too often...
        (_run(SLOT, SLOT + minutes(5), "success"), SLOT + timedelta(hours=12), True),
        # ...as does one while the first is still open.
        (_run(SLOT), SLOT + minutes(1), True),
        # A retry after a failure, a timeout or a too fast run is expected.
        (_run(SLOT, SLOT + minutes(5), "failure"), SLOT + minutes(30), False),
        (_run(SLOT, None, "timeout"), SLOT + minutes(30), False),
        (_run(SLOT, SLOT + minutes(1), "too_fast"), SLOT + minutes(30), False),
        # A run a little early (within grace) counts for today's slot: not too early
        # after yesterday's, but the on-time run after it is.
        (_run(SLOT - timedelta(days=1)), SLOT - minutes(10), False),
        (_run(SLOT - minutes(10), SLOT - minutes(5), "success"), SLOT, True),
        # A finish without start dates the previous run by its finish.
        (_run(None, SLOT + minutes(20), "success"), SLOT + timedelta(hours=3), True),
        (_run(None, SLOT - timedelta(hours=3), "success"), SLOT, False),
    ],
)
def test_too_early_on_a_cron_schedule(previous, at, early):
    assert runs.too_early(monitor_for(), previous, at) is early


@pytest.mark.parametrize(
    ("since_previous", "early"),
    [
        (timedelta(hours=6), False),
        # The early tolerance is the grace time (15 minutes).
        (timedelta(hours=5, minutes=45), False),
        (timedelta(hours=5, minutes=44), True),
        (timedelta(hours=1), True),
    ],
)
def test_too_early_on_a_period_schedule(since_previous, early):
    monitor = monitor_for(schedule_kind="period", period=timedelta(hours=6), cron="")
    previous = _run(SLOT, SLOT + minutes(5), "success")
    assert runs.too_early(monitor, previous, SLOT + since_previous) is early


def test_decide_a_second_start_without_run_id_closes_the_first_as_failed():
    monitor = monitor_for()
    state = JobMonitorState(status=Status.RUNNING, next_expected=SLOT + timedelta(days=1))
    open_run = _run(SLOT, pk=7)
    decision = runs.decide(
        monitor, state, Ping("start", SLOT + minutes(30)), None, [open_run], open_run
    )
    new, closed = decision.writes
    assert new.run is None
    assert new.fields["too_early"] is True
    assert closed.run is open_run
    assert closed.fields["outcome"] == Outcome.FAILURE
    assert "No finish was reported" in closed.fields["excerpt"]
    assert decision.state["status"] == Status.RUNNING
    assert decision.state["last_outcome"] == Outcome.FAILURE
    # The same slot: the next expected start stays tomorrow's.
    assert decision.state["next_expected"] == SLOT + timedelta(days=1)


def test_decide_a_start_with_run_id_closes_nothing():
    open_run = _run(SLOT, pk=7)
    decision = runs.decide(
        monitor_for(),
        JobMonitorState(status=Status.RUNNING),
        Ping("start", SLOT + minutes(1), run_id=uuid.uuid4()),
        None,
        [open_run],
        open_run,
    )
    assert len(decision.writes) == 1
    assert decision.outcomes == ()


def test_decide_a_finish_leaves_running_while_another_run_is_open():
    first, second = _run(SLOT, run_id=uuid.uuid4(), pk=1), _run(SLOT, run_id=uuid.uuid4(), pk=2)
    decision = runs.decide(
        monitor_for(),
        JobMonitorState(status=Status.RUNNING),
        Ping("success", SLOT + minutes(3), run_id=first.run_id),
        first,
        [first, second],
        second,
    )
    assert decision.state["status"] == Status.RUNNING
    assert decision.state["last_success"] == SLOT + minutes(3)
    failing = runs.decide(
        monitor_for(),
        JobMonitorState(status=Status.RUNNING),
        Ping("fail", SLOT + minutes(3), run_id=first.run_id),
        first,
        [first, second],
        second,
    )
    assert failing.state["status"] == Status.FAILED


def test_decide_a_finish_does_not_pair_beyond_the_window():
    old = _run(SLOT - timedelta(hours=73), pk=3)
    decision = runs.decide(
        monitor_for(),
        JobMonitorState(status=Status.RUNNING),
        Ping("success", SLOT),
        None,
        [old],
        old,
    )
    (write,) = decision.writes
    assert write.run is None
    assert "started_at" not in write.fields
    assert "duration" not in write.fields


def test_pairing_window_grows_with_a_long_maximum_duration():
    assert runs.pairing_window(monitor_for()) == timedelta(hours=72)
    assert runs.pairing_window(monitor_for(max_duration=timedelta(hours=30))) == timedelta(hours=72)
    assert runs.pairing_window(monitor_for(max_duration=timedelta(days=3))) == timedelta(days=6)


@pytest.mark.parametrize(
    ("ping", "message"),
    [
        (Ping("restart", SLOT), "unknown ping kind"),  # type: ignore[arg-type]
        (Ping("exit", SLOT), "0 to 255"),
        (Ping("exit", SLOT, exit_code=256), "0 to 255"),
        (Ping("exit", SLOT, exit_code=-1), "0 to 255"),
        (Ping("success", datetime(2026, 4, 1, 2)), "timezone-aware"),
    ],
)
def test_check_ping_refuses_what_no_client_sends(ping, message):
    with pytest.raises(ValueError, match=message):
        runs.check_ping(ping)


# record_ping on the database ---------------------------------------------------------


@pytest.fixture
def job(org):
    return make_job(org)


def record(monitor, kind, at, **fields) -> JobRun | None:
    return runs.record_ping(monitor, Ping(kind, at, **fields), PINGS)


def state_of(monitor) -> JobMonitorState:
    return JobMonitorState.objects.get(pk=monitor.pk)


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_start_then_success_records_one_run(job):
    started = record(job, "start", SLOT, trace_id=TRACE, span_id=SPAN, body="begin")
    assert state_of(job).status == Status.RUNNING
    assert state_of(job).last_start == SLOT
    finished = record(job, "success", SLOT + minutes(7), body="rows: 1200")
    assert finished.pk == started.pk
    run = JobRun.objects.get()
    assert run.outcome == Outcome.SUCCESS
    assert (run.started_at, run.finished_at, run.duration) == (
        SLOT,
        SLOT + minutes(7),
        minutes(7),
    )
    assert run.excerpt == "begin\nrows: 1200"
    assert (run.trace_id, run.span_id) == (TRACE, SPAN)
    assert run.too_early is False
    state = state_of(job)
    assert state.status == Status.UP
    assert state.last_success == SLOT + minutes(7)
    assert state.last_outcome == Outcome.SUCCESS
    assert state.next_expected == SLOT + timedelta(days=1)


def test_success_without_start_records_a_run_of_unknown_duration(job):
    run = record(job, "success", SLOT + minutes(3))
    assert run.started_at is None
    assert run.finished_at == SLOT + minutes(3)
    assert run.duration is None
    assert run.outcome == Outcome.SUCCESS
    assert state_of(job).status == Status.UP
    assert state_of(job).next_expected == SLOT + timedelta(days=1)


def test_start_twice_closes_the_first_as_failed_and_flags_the_second(job):
    first = record(job, "start", SLOT)
    second = record(job, "start", SLOT + minutes(20))
    first.refresh_from_db()
    assert first.outcome == Outcome.FAILURE
    assert first.finished_at is None
    assert second.outcome == ""
    assert second.too_early is True
    assert state_of(job).status == Status.RUNNING
    record(job, "success", SLOT + minutes(25))
    second.refresh_from_db()
    assert (second.outcome, second.duration) == (Outcome.SUCCESS, minutes(5))
    assert JobRun.objects.count() == 2


def test_run_ids_pair_overlapping_runs(job):
    a, b = uuid.uuid4(), uuid.uuid4()
    record(job, "start", SLOT, run_id=a)
    record(job, "start", SLOT + minutes(1), run_id=b)
    run_a = record(job, "exit", SLOT + minutes(10), run_id=a, exit_code=0)
    assert (run_a.run_id, run_a.duration) == (a, minutes(10))
    assert state_of(job).status == Status.RUNNING
    run_b = record(job, "exit", SLOT + minutes(4), run_id=b, exit_code=3)
    assert (run_b.outcome, run_b.exit_code, run_b.duration) == (
        Outcome.FAILURE,
        3,
        minutes(3),
    )
    assert state_of(job).status == Status.FAILED
    assert state_of(job).last_failure == SLOT + minutes(4)


def test_the_same_run_id_finishing_twice_records_once(job):
    rid = uuid.uuid4()
    before = sample("controlplane_job_runs_total", job=job_label(job), outcome="success")
    record(job, "start", SLOT, run_id=rid)
    first = record(job, "success", SLOT + minutes(5), run_id=rid)
    version = state_of(job).version
    again = record(job, "fail", SLOT + minutes(6), run_id=rid)
    assert again.pk == first.pk
    again.refresh_from_db()
    assert again.outcome == Outcome.SUCCESS
    assert JobRun.objects.count() == 1
    assert state_of(job).version == version
    assert state_of(job).status == Status.UP
    assert (
        sample("controlplane_job_runs_total", job=job_label(job), outcome="success") == before + 1
    )


def test_the_same_run_id_starting_twice_opens_once(job):
    rid = uuid.uuid4()
    first = record(job, "start", SLOT, run_id=rid)
    again = record(job, "start", SLOT + minutes(1), run_id=rid)
    assert again.pk == first.pk
    assert JobRun.objects.get().started_at == SLOT


def test_an_unknown_run_id_on_finish_records_a_run_without_start(job):
    rid = uuid.uuid4()
    record(job, "start", SLOT)
    run = record(job, "success", SLOT + minutes(5), run_id=rid)
    assert (run.run_id, run.started_at, run.outcome) == (rid, None, Outcome.SUCCESS)
    # The start without run id is still open: a finish with a run id never pairs with it.
    assert JobRun.objects.filter(outcome="").count() == 1
    assert state_of(job).status == Status.RUNNING


def test_a_finish_without_run_id_does_not_pair_with_a_run_that_has_one(job):
    record(job, "start", SLOT, run_id=uuid.uuid4())
    run = record(job, "success", SLOT + minutes(5))
    assert run.started_at is None
    assert JobRun.objects.count() == 2


@pytest.mark.parametrize(
    ("code", "outcome", "status"), [(0, "success", "up"), (3, "failure", "failed")]
)
def test_exit_status(job, code, outcome, status):
    record(job, "start", SLOT)
    run = record(job, "exit", SLOT + minutes(5), exit_code=code)
    assert (run.outcome, run.exit_code) == (outcome, code)
    assert state_of(job).status == status
    assert state_of(job).last_outcome == outcome


def test_minimum_and_maximum_duration(org):
    monitor = make_job(org, min_duration=minutes(5), max_duration=minutes(60))
    record(monitor, "start", SLOT)
    fast = record(monitor, "success", SLOT + minutes(2))
    assert fast.outcome == Outcome.TOO_FAST
    assert state_of(monitor).status == Status.FAILED
    record(monitor, "start", SLOT + timedelta(days=1))
    slow = record(monitor, "success", SLOT + timedelta(days=1, minutes=61))
    assert slow.outcome == Outcome.TIMEOUT
    assert state_of(monitor).status == Status.FAILED
    record(monitor, "start", SLOT + timedelta(days=2))
    good = record(monitor, "success", SLOT + timedelta(days=2, minutes=30))
    assert good.outcome == Outcome.SUCCESS
    assert state_of(monitor).status == Status.UP


def test_a_body_over_the_limit_is_stored_truncated_and_the_run_recorded(job):
    body = "start of the log\n" + "x" * (10 * 1024 * 1024) + "\nexit: disk full"
    run = record(job, "fail", SLOT, body=body)
    run.refresh_from_db()
    assert run.outcome == Outcome.FAILURE
    assert run.excerpt_truncated is True
    assert len(run.excerpt) == EXCERPT_LIMIT
    assert run.excerpt.endswith("exit: disk full")


def test_odd_bodies_and_trace_ids_are_stored_safely(job):
    run = record(job, "start", SLOT, body="nul\x00here", trace_id="not-a-trace", span_id="zz")
    run.refresh_from_db()
    assert run.excerpt == "nul\ufffdhere"
    assert (run.trace_id, run.span_id) == ("", "")
    # A finish brings the trace a start lacked.
    run = record(job, "success", SLOT + minutes(1), trace_id=TRACE.upper(), span_id=SPAN)
    assert (run.trace_id, run.span_id) == (TRACE, SPAN)


def test_log_appends_to_the_open_run_and_changes_no_status(job):
    record(job, "start", SLOT, body="one")
    version = state_of(job).version
    run = record(job, "log", SLOT + minutes(1), body="two")
    run.refresh_from_db()
    assert run.excerpt == "one\ntwo"
    assert run.outcome == ""
    assert state_of(job).status == Status.RUNNING
    assert state_of(job).version == version + 1


def test_log_without_an_open_run_records_nothing(job):
    assert record(job, "log", SLOT, body="orphan") is None
    assert JobRun.objects.count() == 0
    assert state_of(job).status == Status.NEW


def test_a_ping_resumes_a_paused_monitor_but_a_log_does_not(job):
    assert runs.pause(job, PINGS, now=SLOT) is True
    assert runs.pause(job, PINGS, now=SLOT) is False
    record(job, "start", SLOT)
    assert state_of(job).status == Status.RUNNING
    runs.pause(job, PINGS, now=SLOT)
    record(job, "log", SLOT + minutes(1), body="still here")
    assert state_of(job).status == Status.PAUSED
    record(job, "success", SLOT + minutes(2))
    assert state_of(job).status == Status.UP


@pytest.mark.parametrize(
    ("last_outcome", "open_run", "status"),
    [
        ("", False, Status.NEW),
        (Outcome.SUCCESS, False, Status.UP),
        (Outcome.FAILURE, False, Status.FAILED),
        (Outcome.TIMEOUT, False, Status.FAILED),
        (Outcome.MISSED, False, Status.LATE),
        (Outcome.SUCCESS, True, Status.RUNNING),
    ],
)
def test_resume_restores_what_the_last_run_says(org, last_outcome, open_run, status):
    monitor = make_job(org, state={"status": Status.PAUSED, "last_outcome": last_outcome})
    if open_run:
        JobRun.objects.create(monitor=monitor, started_at=SLOT)
    assert runs.resume(monitor, PINGS, now=SLOT + minutes(30)) is True
    assert runs.resume(monitor, PINGS, now=SLOT + minutes(30)) is False
    state = state_of(monitor)
    assert state.status == status
    expected = None if status == Status.NEW else SLOT + timedelta(days=1)
    assert state.next_expected == expected


def test_a_late_finish_completes_a_timed_out_run_and_keeps_its_outcome(org):
    monitor = make_job(org, max_duration=minutes(60))
    run = record(monitor, "start", SLOT)
    JobRun.objects.filter(pk=run.pk).update(outcome=Outcome.TIMEOUT)
    JobMonitorState.objects.filter(pk=monitor.pk).update(
        status=Status.FAILED, last_outcome=Outcome.TIMEOUT
    )
    timeouts = sample("controlplane_job_runs_total", job=job_label(monitor), outcome="timeout")
    durations = sample("controlplane_job_run_duration_seconds_count", job=job_label(monitor))
    late = record(monitor, "success", SLOT + minutes(90), body="finally")
    assert late.pk == run.pk
    late.refresh_from_db()
    assert (late.outcome, late.finished_at, late.duration) == (
        Outcome.TIMEOUT,
        SLOT + minutes(90),
        minutes(90),
    )
    assert state_of(monitor).status == Status.FAILED
    assert JobRun.objects.count() == 1
    # Counted once (by the check that timed it out), its duration learnt now.
    assert (
        sample("controlplane_job_runs_total", job=job_label(monitor), outcome="timeout") == timeouts
    )
    assert (
        sample("controlplane_job_run_duration_seconds_count", job=job_label(monitor))
        == durations + 1
    )


def test_too_early_across_slots(job):
    record(job, "start", SLOT)
    record(job, "success", SLOT + minutes(5))
    again = record(job, "success", SLOT + timedelta(hours=6))
    assert again.too_early is True
    tomorrow = record(job, "start", SLOT + timedelta(days=1))
    assert tomorrow.too_early is False
    record(job, "fail", SLOT + timedelta(days=1, minutes=3))
    retry = record(job, "start", SLOT + timedelta(days=1, minutes=30))
    assert retry.too_early is False


def test_a_late_run_does_not_bring_back_a_missed_slot(job):
    JobMonitorState.objects.filter(pk=job.pk).update(
        status=Status.LATE, next_expected=SLOT + timedelta(days=1), last_outcome="missed"
    )
    run = record(job, "start", SLOT + timedelta(hours=5))
    assert run.too_early is False
    assert state_of(job).next_expected == SLOT + timedelta(days=1)


def test_metrics_are_written(job):
    runs_before = sample("controlplane_job_runs_total", job=job_label(job), outcome="failure")
    count_before = sample("controlplane_job_run_duration_seconds_count", job=job_label(job))
    record(job, "start", SLOT)
    record(job, "success", SLOT + minutes(2))
    record(job, "start", SLOT + timedelta(days=1))
    record(job, "fail", SLOT + timedelta(days=1, minutes=1))
    assert (
        sample("controlplane_job_runs_total", job=job_label(job), outcome="failure")
        == runs_before + 1
    )
    assert (
        sample("controlplane_job_run_duration_seconds_count", job=job_label(job))
        == count_before + 2
    )
    assert sample("controlplane_job_last_success_timestamp_seconds", job=job_label(job)) == (
        (SLOT + minutes(2)).timestamp()
    )


def test_ensure_state_makes_a_new_state_once(org):
    monitor = make_job(org)
    JobMonitorState.objects.filter(pk=monitor.pk).delete()
    state = runs.ensure_state(monitor)
    assert state.status == Status.NEW
    assert runs.ensure_state(monitor).pk == state.pk
    assert JobMonitorState.objects.filter(pk=monitor.pk).count() == 1


def test_reschedule_after_an_edit_expects_the_new_schedule(org):
    monitor = make_job(org)
    assert runs.reschedule(monitor, PINGS, now=SLOT) is False  # never ran: still waiting
    record(monitor, "success", SLOT + minutes(5))
    assert state_of(monitor).next_expected == SLOT + timedelta(days=1)
    monitor.cron = "0 3 * * *"
    monitor.time_zone = "Europe/Paris"
    monitor.save()
    assert runs.reschedule(monitor, PINGS, now=SLOT + timedelta(hours=10)) is True
    # 03:00 in Paris on 2 April (CEST) is 01:00 UTC.
    assert state_of(monitor).next_expected == utc(4, 2, 1)
    assert runs.reschedule(monitor, PINGS, now=SLOT + timedelta(hours=10)) is False


# Pings in any order: properties ---------------------------------------------------

RIDS = [None, uuid.UUID(int=1), uuid.UUID(int=2)]
ping_steps = st.lists(
    st.tuples(
        # "check": beat's overdue check runs then.
        st.sampled_from(["start", "success", "fail", "log", "exit", "check"]),
        st.sampled_from(RIDS),
        # Minutes since the previous step: durations around the minimum (5) and the
        # maximum (60), and a day without a run.
        st.sampled_from([0, 1, 4, 6, 30, 59, 61, 90, 24 * 60]),
        st.sampled_from([0, 0, 3]),  # exit status
        st.booleans(),  # sent twice
    ),
    max_size=12,
)


def _snapshot(monitor):
    rows = JobRun.objects.filter(monitor=monitor).order_by("pk")
    return list(rows.values()), state_of(monitor).version


def _counted(monitor) -> float:
    return sum(
        sample("controlplane_job_runs_total", job=job_label(monitor), outcome=outcome)
        for outcome in Outcome.values
    )


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=ping_steps)
def test_any_order_of_pings_keeps_the_books_straight(org, steps):
    with transaction.atomic():
        monitor = make_job(org, "prop", min_duration=minutes(5), max_duration=minutes(60))
        counted = _counted(monitor)
        at = SLOT
        for kind, rid, gap, code, twice in steps:
            at += minutes(gap)
            if kind == "check":
                overdue.check(at, PINGS)
            else:
                code = code if kind == "exit" else None
                ping = Ping(kind, at, run_id=rid, exit_code=code, body="x")
                runs.record_ping(monitor, ping, PINGS)
                if twice and rid is not None and kind != "log":
                    # The same run id reported again records nothing more.
                    before = _snapshot(monitor)
                    runs.record_ping(monitor, ping, PINGS)
                    assert _snapshot(monitor) == before
            every = list(JobRun.objects.filter(monitor=monitor))
            open_runs = [run for run in every if run.outcome == ""]
            status = state_of(monitor).status
            assert (status == Status.RUNNING) <= bool(open_runs)
            if not open_runs:
                assert status != Status.RUNNING
            assert all(run.started_at and not run.finished_at for run in open_runs)
            with_rid = [run.run_id for run in every if run.run_id is not None]
            assert len(with_rid) == len(set(with_rid))
            for run in every:
                assert len(run.excerpt) <= EXCERPT_LIMIT
                if run.started_at and run.finished_at:
                    assert run.duration == max(run.finished_at - run.started_at, timedelta(0))
            # Each outcome counted once, when it was given.
            assert _counted(monitor) - counted == sum(1 for run in every if run.outcome)
        transaction.set_rollback(True)
