"""Recording pings: the one way a ping changes a monitor.

`decide()` is pure: given the monitor's definition, its state, the runs a ping may
concern and the ping, it says which runs to write and how the state changes.
`record_ping()` reads those, locks the state row, applies the decision with a
compare-and-set on the state's `version` and writes the metrics, in one transaction.

Semantics (Healthchecks' pairing, with its missing pieces filled in):

- `start` opens a run. A start with a run id (`?rid=`) already recorded is a no-op. A
  start without a run id closes the monitor's open runs without run id as `failure`
  ("no finish reported before the next start": the process died without a word);
  runs with run ids may overlap, so a start with a run id closes nothing.
- `success`, `exit 0`, `fail`, `exit 1-255` finish a run: the run with the ping's run
  id; without a run id, the latest unfinished run without run id started at most
  `pairing_window()` before (72 h, or twice the maximum duration when longer). No such
  run: a run is recorded without a start (its duration unknown). A run id that already
  finished: a no-op (the same rid reported twice records once).
- The outcome of a finish: `failure` for fail or a non-zero exit; else `timeout` when
  the run lasted more than the maximum duration, `too_fast` when less than the
  minimum, `success` otherwise (always `success` when the duration is unknown).
- A finish for a run the overdue check already timed out completes that run's record
  (finish time, duration, exit code, excerpt); its outcome and the monitor's status
  stay as they are.
- `log` appends its body to the unfinished run it pairs with as a finish would, and
  changes no status; with no such run it records nothing.
- Too early: a run (a start, or a finish without start) counts for one scheduled slot
  (`schedule.served_slot`); it is too early when the previous run counted for the same
  slot or a later one and did not fail (a retry after a failure is expected). For a
  period schedule: when it starts sooner than the period minus the early tolerance
  after the previous run. Too early is a flag on the run; the outcome is unchanged.
- Status: `running` while a run is open (a run succeeding while another is open
  leaves it running), `up` after a success, `failed` after a failure, timeout or too
  fast run (even while another run is open). Any ping but `log` resumes a paused
  monitor; `late` is the overdue check's to set.
- `next_expected`: the slot after the one the run counts for (period: the run's start
  plus the period), never moved backwards. A new monitor has none until its first run.
- The excerpt is the last EXCERPT_LIMIT characters of the bodies of the run's pings.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from controlplane.catalog.actors import Actor
from controlplane.jobs import metrics, schedule, trouble
from controlplane.jobs.models import EXCERPT_LIMIT, JobMonitor, JobMonitorState, JobRun

PingKind = Literal["start", "success", "fail", "log", "exit"]
PING_KINDS: tuple[str, ...] = ("start", "success", "fail", "log", "exit")
# Healthchecks does not pair a start and a finish further apart than this.
PAIRING_WINDOW = timedelta(hours=72)
FAILED_OUTCOMES = frozenset(
    {JobRun.Outcome.FAILURE, JobRun.Outcome.TIMEOUT, JobRun.Outcome.TOO_FAST}
)
Status = JobMonitorState.Status
Outcome = JobRun.Outcome
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_SPAN_ID = re.compile(r"^[0-9a-f]{16}$")
# How much older than the pairing window an open run may be and still be closed by a
# start without run id: the overdue check times open runs out well before (it would
# take beat down for this long), and the bound keeps a ping's query to recent rows.
UNFINISHED_MARGIN = timedelta(days=7)
# Compare-and-set conflicts retried before giving up (only SQLite, which does not lock
# rows, can conflict: on PostgreSQL the state row is locked for the whole decision).
ATTEMPTS = 5


@dataclass(frozen=True)
class Ping:
    kind: PingKind
    at: datetime
    exit_code: int | None = None
    run_id: uuid.UUID | None = None
    body: str = ""
    body_truncated: bool = False
    trace_id: str = ""
    span_id: str = ""


@dataclass(frozen=True)
class RunWrite:
    """Fields to write on a run: an existing one, or a new one when `run` is None."""

    run: JobRun | None
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class Decision:
    """What a ping changes. `writes[0]`, when present, is the ping's own run; with no
    write, `existing` is the run the ping repeated (or None: nothing to record)."""

    state: Mapping[str, Any] = field(default_factory=dict)
    writes: tuple[RunWrite, ...] = ()
    existing: JobRun | None = None
    # For the metrics: the outcomes this decision assigns (each counted once), and the
    # durations it learns (a late finish of a timed-out run brings only a duration).
    outcomes: tuple[str, ...] = ()
    durations: tuple[timedelta, ...] = ()


class Conflict(Exception):
    """The state changed between the read and the compare-and-set."""


def check_ping(ping: Ping) -> None:
    """Raise ValueError for a ping no client can send (the endpoints answer 400)."""
    if ping.kind not in PING_KINDS:
        raise ValueError(f"unknown ping kind {ping.kind!r}")
    if ping.at.tzinfo is None:
        raise ValueError("a ping's time must be timezone-aware")
    if ping.kind == "exit" and (ping.exit_code is None or not 0 <= ping.exit_code <= 255):
        raise ValueError("an exit status is a number from 0 to 255")


def pairing_window(monitor: JobMonitor) -> timedelta:
    """How long before a finish its start may be: long enough that a run finishing
    late is still paired (and so timed out), not recorded as a run without start."""
    if monitor.max_duration is not None and 2 * monitor.max_duration > PAIRING_WINDOW:
        return 2 * monitor.max_duration
    return PAIRING_WINDOW


def effective_max_duration(monitor: JobMonitor) -> timedelta:
    """The maximum duration, or the pairing window: a run open that long is not coming
    back (Healthchecks forgets its start)."""
    return monitor.max_duration if monitor.max_duration is not None else PAIRING_WINDOW


def clean_text(text: str) -> str:
    """Text PostgreSQL can store: no NUL, no lone surrogate."""
    text = text.replace("\x00", "\ufffd")
    return text.encode("utf-8", "replace").decode("utf-8")


def excerpt(
    previous: str, previous_truncated: bool, body: str, body_truncated: bool
) -> tuple[str, bool]:
    """The tail of a run's output after one more body: (text, truncated)."""
    body = clean_text(body)
    if not body:
        return previous, previous_truncated
    separator = "" if not previous or previous.endswith("\n") else "\n"
    joined = f"{previous}{separator}{body}"
    truncated = previous_truncated or body_truncated or len(joined) > EXCERPT_LIMIT
    return joined[-EXCERPT_LIMIT:], truncated


def ping_outcome(monitor: JobMonitor, ping: Ping, duration: timedelta | None) -> str:
    if ping.kind == "fail" or (ping.kind == "exit" and ping.exit_code != 0):
        return Outcome.FAILURE
    if duration is not None:
        if monitor.max_duration is not None and duration > monitor.max_duration:
            return Outcome.TIMEOUT
        if monitor.min_duration is not None and duration < monitor.min_duration:
            return Outcome.TOO_FAST
    return Outcome.SUCCESS


def run_time(run: JobRun) -> datetime | None:
    """When a run began, as far as anyone knows: its start, else its finish."""
    return run.started_at or run.finished_at


def too_early(monitor: JobMonitor, previous: JobRun | None, at: datetime) -> bool:
    """Whether a run beginning at `at` comes before the schedule allows, after `previous`
    (the monitor's latest run that was not missed)."""
    if previous is None or previous.outcome in FAILED_OUTCOMES:
        return False
    previous_at = run_time(previous)
    if previous_at is None:
        return False
    if monitor.schedule_kind == JobMonitor.Schedule.PERIOD:
        allowed = monitor.period - schedule.early_tolerance(monitor, monitor.period)
        return at - previous_at < allowed
    slot = schedule.served_slot(monitor, at)
    previous_slot = schedule.served_slot(monitor, previous_at)
    return slot is not None and previous_slot is not None and slot <= previous_slot


def next_after_run(monitor: JobMonitor, state: JobMonitorState, at: datetime) -> datetime:
    """The state's next expected start once a run began at `at`: never moved backwards,
    so that a late run does not bring back a slot the overdue check already reported."""
    slot = schedule.served_slot(monitor, at)
    following = schedule.next_expected(monitor, slot or at)
    if state.next_expected is not None and state.next_expected > following:
        return state.next_expected
    return following


def _trace_fields(ping: Ping, run: JobRun | None) -> dict[str, str]:
    if run is not None and run.trace_id:
        return {}
    trace_id = ping.trace_id.lower() if _TRACE_ID.match(ping.trace_id.lower()) else ""
    if not trace_id or trace_id == "0" * 32:
        return {}
    span_id = ping.span_id.lower() if _SPAN_ID.match(ping.span_id.lower()) else ""
    return {"trace_id": trace_id, "span_id": span_id}


def _excerpt_fields(run: JobRun | None, ping: Ping) -> dict[str, Any]:
    text, truncated = excerpt(
        run.excerpt if run is not None else "",
        run.excerpt_truncated if run is not None else False,
        ping.body,
        ping.body_truncated,
    )
    if run is not None and text == run.excerpt and truncated == run.excerpt_truncated:
        return {}
    return {"excerpt": text, "excerpt_truncated": truncated}


def _paired_run(
    monitor: JobMonitor, ping: Ping, by_rid: JobRun | None, unfinished: Sequence[JobRun]
) -> JobRun | None:
    """The unfinished run a finish or log without run id (or with one) concerns."""
    if ping.run_id is not None:
        return by_rid
    earliest = ping.at - pairing_window(monitor)
    candidates = [
        run
        for run in unfinished
        if run.run_id is None
        and run.finished_at is None
        and run.started_at is not None
        and earliest <= run.started_at <= ping.at
    ]
    return max(candidates, key=lambda run: (run.started_at, run.pk or 0), default=None)


def _status_after(outcome: str, others_open: bool) -> str:
    if outcome in FAILED_OUTCOMES:
        return Status.FAILED
    return Status.RUNNING if others_open else Status.UP


def _closed_state(outcome: str, at: datetime, others_open: bool) -> dict[str, Any]:
    changes: dict[str, Any] = {
        "status": _status_after(outcome, others_open),
        "last_outcome": outcome,
    }
    if outcome == Outcome.SUCCESS:
        changes["last_success"] = at
    else:
        changes["last_failure"] = at
    return changes


def decide(
    monitor: JobMonitor,
    state: JobMonitorState,
    ping: Ping,
    by_rid: JobRun | None,
    unfinished: Sequence[JobRun],
    previous: JobRun | None,
) -> Decision:
    """What `ping` changes. `by_rid`: the monitor's run with the ping's run id, if any;
    `unfinished`: its runs started and not finished (the open ones at least);
    `previous`: its latest run that was not missed."""
    if ping.kind == "log":
        return _decide_log(monitor, ping, by_rid, unfinished)
    if ping.kind == "start":
        return _decide_start(monitor, state, ping, by_rid, unfinished, previous)
    return _decide_finish(monitor, state, ping, by_rid, unfinished, previous)


def _decide_log(
    monitor: JobMonitor, ping: Ping, by_rid: JobRun | None, unfinished: Sequence[JobRun]
) -> Decision:
    run = _paired_run(monitor, ping, by_rid, unfinished)
    if run is None or run.finished_at is not None:
        return Decision()
    fields = _excerpt_fields(run, ping) | _trace_fields(ping, run)
    if not fields:
        return Decision(existing=run)
    return Decision(writes=(RunWrite(run, fields),))


def _decide_start(
    monitor: JobMonitor,
    state: JobMonitorState,
    ping: Ping,
    by_rid: JobRun | None,
    unfinished: Sequence[JobRun],
    previous: JobRun | None,
) -> Decision:
    if by_rid is not None:
        return Decision(existing=by_rid)
    new = RunWrite(
        None,
        {
            "run_id": ping.run_id,
            "started_at": ping.at,
            "too_early": too_early(monitor, previous, ping.at),
            "created_at": ping.at,
        }
        | _excerpt_fields(None, ping)
        | _trace_fields(ping, None),
    )
    changes: dict[str, Any] = {
        "status": Status.RUNNING,
        "last_start": ping.at,
        "next_expected": next_after_run(monitor, state, ping.at),
    }
    superseded: list[RunWrite] = []
    if ping.run_id is None:
        note = f"No finish was reported before the next start at {ping.at.isoformat()}."
        for run in unfinished:
            if run.run_id is None and run.outcome == "" and run.started_at is not None:
                text, truncated = excerpt(run.excerpt, run.excerpt_truncated, note, False)
                superseded.append(
                    RunWrite(
                        run,
                        {
                            "outcome": Outcome.FAILURE,
                            "excerpt": text,
                            "excerpt_truncated": truncated,
                        },
                    )
                )
    if superseded:
        changes |= {"last_outcome": Outcome.FAILURE, "last_failure": ping.at}
    return Decision(
        state=changes,
        writes=(new, *superseded),
        outcomes=tuple(Outcome.FAILURE for _ in superseded),
    )


def _decide_finish(
    monitor: JobMonitor,
    state: JobMonitorState,
    ping: Ping,
    by_rid: JobRun | None,
    unfinished: Sequence[JobRun],
    previous: JobRun | None,
) -> Decision:
    run = _paired_run(monitor, ping, by_rid, unfinished)
    if run is not None and run.finished_at is not None:
        return Decision(existing=run)
    finish = {"finished_at": ping.at, "exit_code": ping.exit_code}
    if run is None:
        outcome = ping_outcome(monitor, ping, None)
        new = RunWrite(
            None,
            finish
            | {
                "run_id": ping.run_id,
                "outcome": outcome,
                "too_early": too_early(monitor, previous, ping.at),
                "created_at": ping.at,
            }
            | _excerpt_fields(None, ping)
            | _trace_fields(ping, None),
        )
        others_open = any(other.outcome == "" for other in unfinished)
        changes = _closed_state(outcome, ping.at, others_open)
        changes["next_expected"] = next_after_run(monitor, state, ping.at)
        return Decision(state=changes, writes=(new,), outcomes=(outcome,))
    duration = max(ping.at - run.started_at, timedelta(0))
    fields = finish | {"duration": duration} | _excerpt_fields(run, ping) | _trace_fields(ping, run)
    if run.outcome:
        # Timed out by the overdue check (or closed by a later start) before this
        # finish came: complete the record, keep the outcome already announced. A ping
        # still resumes a paused monitor, as every ping but log does.
        others_open = any(other.outcome == "" and other.pk != run.pk for other in unfinished)
        resumed = (
            {"status": _resumed_status(state, others_open)} if state.status == Status.PAUSED else {}
        )
        return Decision(state=resumed, writes=(RunWrite(run, fields),), durations=(duration,))
    outcome = ping_outcome(monitor, ping, duration)
    others_open = any(other.outcome == "" and other.pk != run.pk for other in unfinished)
    return Decision(
        state=_closed_state(outcome, ping.at, others_open),
        writes=(RunWrite(run, fields | {"outcome": outcome}),),
        outcomes=(outcome,),
        durations=(duration,),
    )


def ensure_state(monitor: JobMonitor) -> JobMonitorState:
    """The monitor's state, made (status new) if it has none yet."""
    try:
        return JobMonitorState.objects.get(pk=monitor.pk)
    except JobMonitorState.DoesNotExist:
        pass
    try:
        with transaction.atomic():
            return JobMonitorState.objects.create(monitor=monitor)
    except IntegrityError:
        # A racing ping made it first.
        return JobMonitorState.objects.get(pk=monitor.pk)


def record_ping(monitor: JobMonitor, ping: Ping, actor: Actor) -> JobRun | None:
    """Record one ping of `monitor` and return the run it created, finished or appended
    to (for a repeated run id: the run already recorded; None: a log with no run to
    append to). Raises ValueError for a ping that `check_ping` refuses."""
    check_ping(ping)
    ensure_state(monitor)
    for attempt in range(ATTEMPTS):
        try:
            run, decision = _apply_ping(monitor, ping)
        except (Conflict, IntegrityError):
            if attempt == ATTEMPTS - 1:
                raise
            continue
        _observe(monitor, decision, run)
        return run
    raise AssertionError("unreachable")


def _apply_ping(monitor: JobMonitor, ping: Ping) -> tuple[JobRun | None, Decision]:
    with transaction.atomic():
        state = JobMonitorState.objects.select_for_update().get(pk=monitor.pk)
        runs = JobRun.objects.filter(monitor=monitor)
        by_rid = runs.filter(run_id=ping.run_id).first() if ping.run_id is not None else None
        unfinished = list(
            runs.filter(
                started_at__isnull=False,
                finished_at__isnull=True,
                created_at__gte=ping.at - pairing_window(monitor) - UNFINISHED_MARGIN,
            ).filter(Q(outcome="") | Q(started_at__gte=ping.at - pairing_window(monitor)))
        )
        previous = None
        if ping.kind != "log":
            previous = runs.exclude(outcome=Outcome.MISSED).order_by("-created_at", "-pk").first()
        decision = decide(monitor, state, ping, by_rid, unfinished, previous)
        if not decision.writes:
            return decision.existing, decision
        changes = {**decision.state, **trouble.follow(state, decision.state, _trace(decision))}
        _compare_and_set(state, changes, ping.at)
        written = [_write_run(monitor, write) for write in decision.writes]
        return written[0], decision


def _trace(decision: Decision) -> str:
    """The trace of the run the ping closed (or opened): its start's, else the ping's."""
    for write in decision.writes:
        found = write.fields.get("trace_id") or (write.run.trace_id if write.run else "")
        if found:
            return found
    return ""


def _compare_and_set(state: JobMonitorState, changes: Mapping[str, Any], at: datetime) -> None:
    values = dict(changes, version=state.version + 1)
    if "status" in changes:
        values["changed_at"] = at
    updated = JobMonitorState.objects.filter(pk=state.pk, version=state.version).update(**values)
    if not updated:
        raise Conflict(f"state of monitor {state.pk} changed under a ping")


def _write_run(monitor: JobMonitor, write: RunWrite) -> JobRun:
    if write.run is None:
        return JobRun.objects.create(monitor=monitor, **write.fields)
    JobRun.objects.filter(pk=write.run.pk).update(**write.fields)
    for name, value in write.fields.items():
        setattr(write.run, name, value)
    return write.run


def _observe(monitor: JobMonitor, decision: Decision, run: JobRun | None) -> None:
    job = metrics.job_label(monitor)
    for outcome in decision.outcomes:
        metrics.job_runs.labels(job=job, outcome=outcome).inc()
    for duration in decision.durations:
        metrics.job_run_duration.labels(job=job).observe(duration.total_seconds())
    last_success = decision.state.get("last_success")
    if last_success is not None:
        metrics.job_last_success.labels(job=job).set(last_success.timestamp())


def _resumed_status(state: JobMonitorState, running: bool) -> str:
    if running:
        return Status.RUNNING
    if state.last_outcome == Outcome.MISSED:
        return Status.LATE
    if state.last_outcome in FAILED_OUTCOMES:
        return Status.FAILED
    if state.last_outcome == Outcome.SUCCESS:
        return Status.UP
    return Status.NEW


def pause(monitor: JobMonitor, actor: Actor, now: datetime | None = None) -> bool:
    """Pause the monitor: no missed or timed-out runs until it is resumed or pinged.
    False when it was already paused."""
    now = now or timezone.now()
    state = ensure_state(monitor)
    for _ in range(ATTEMPTS):
        if state.status == Status.PAUSED:
            return False
        updated = JobMonitorState.objects.filter(pk=state.pk, version=state.version).update(
            status=Status.PAUSED, version=state.version + 1, changed_at=now
        )
        if updated:
            return True
        state.refresh_from_db()
    raise Conflict(f"state of monitor {monitor.pk} kept changing")


def resume(monitor: JobMonitor, actor: Actor, now: datetime | None = None) -> bool:
    """Resume a paused monitor: its status is what its last run says again, and its
    next run is expected at the schedule's next time after now (a monitor that never
    ran keeps waiting for its first). False when it was not paused."""
    now = now or timezone.now()
    state = ensure_state(monitor)
    for _ in range(ATTEMPTS):
        if state.status != Status.PAUSED:
            return False
        running = JobRun.objects.filter(
            monitor=monitor, outcome="", started_at__isnull=False
        ).exists()
        status = _resumed_status(state, running)
        expected = None if status == Status.NEW else schedule.next_expected(monitor, now)
        updated = JobMonitorState.objects.filter(pk=state.pk, version=state.version).update(
            status=status, next_expected=expected, version=state.version + 1, changed_at=now
        )
        if updated:
            return True
        state.refresh_from_db()
    raise Conflict(f"state of monitor {monitor.pk} kept changing")


def reschedule(monitor: JobMonitor, actor: Actor, now: datetime | None = None) -> bool:
    """After an edit of the schedule (cron, time zone or period): expect the next run at
    the new schedule's next time after now, instead of the time the old schedule gave.
    A monitor that never ran keeps waiting for its first run. False when nothing moved."""
    now = now or timezone.now()
    state = ensure_state(monitor)
    for _ in range(ATTEMPTS):
        if state.next_expected is None:
            return False
        expected = schedule.next_expected(monitor, now)
        if expected == state.next_expected:
            return False
        updated = JobMonitorState.objects.filter(pk=state.pk, version=state.version).update(
            next_expected=expected, version=state.version + 1
        )
        if updated:
            return True
        state.refresh_from_db()
    raise Conflict(f"state of monitor {monitor.pk} kept changing")
