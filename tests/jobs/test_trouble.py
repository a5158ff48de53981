"""How a monitor's trouble began is kept from the change that began it to the success
that ends it, so etl.job.failure's labels (its identity) hold still meanwhile."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from controlplane.catalog.actors import Actor
from controlplane.jobs import overdue, runs, trouble
from controlplane.jobs.models import JobMonitorState
from controlplane.jobs.runs import Ping
from tests.factories import make_job

PINGS = Actor.system("jobs.ping")
TRACE_A, TRACE_B = "a" * 32, "b" * 32
SLOT = datetime(2026, 4, 1, 2, tzinfo=UTC)


def state(**fields) -> JobMonitorState:
    return JobMonitorState(**fields)


@pytest.mark.parametrize(
    ("before", "changes", "trace", "expected"),
    [
        # Trouble begins: the bad outcome and its run's trace.
        (
            state(status="up", last_outcome="success"),
            {"status": "failed", "last_outcome": "failure"},
            TRACE_A,
            {"trouble_outcome": "failure", "trouble_trace_id": TRACE_A},
        ),
        # It goes on (a failed retry, a slot missed after it): kept as it began.
        (
            state(
                status="failed",
                last_outcome="failure",
                trouble_outcome="failure",
                trouble_trace_id=TRACE_A,
            ),
            {"last_outcome": "timeout"},
            TRACE_B,
            {},
        ),
        (
            state(
                status="failed",
                last_outcome="failure",
                trouble_outcome="failure",
                trouble_trace_id=TRACE_A,
            ),
            {"status": "late", "last_outcome": "missed"},
            "",
            {},
        ),
        # A start after a failure is no recovery.
        (
            state(status="failed", last_outcome="failure", trouble_outcome="failure"),
            {"status": "running"},
            TRACE_B,
            {},
        ),
        # A success ends it.
        (
            state(
                status="running",
                last_outcome="failure",
                trouble_outcome="failure",
                trouble_trace_id=TRACE_A,
            ),
            {"status": "up", "last_outcome": "success"},
            TRACE_B,
            {"trouble_outcome": "", "trouble_trace_id": ""},
        ),
        # Late without a run: missed, with the check's trace.
        (
            state(status="up", last_outcome="success"),
            {"status": "late", "last_outcome": "missed"},
            TRACE_B,
            {"trouble_outcome": "missed", "trouble_trace_id": TRACE_B},
        ),
        # Nothing wrong, nothing kept: no write.
        (state(status="up", last_outcome="success"), {"status": "running"}, TRACE_A, {}),
    ],
)
def test_follow(before, changes, trace, expected):
    assert trouble.follow(before, changes, trace) == expected


def ping(monitor, kind: str, at: datetime, trace: str = "", rid=None, **fields):
    return runs.record_ping(
        monitor, Ping(kind=kind, at=at, trace_id=trace, run_id=rid, **fields), PINGS
    )


def test_retries_and_a_missed_slot_keep_how_the_trouble_began_until_a_success(org):
    monitor = make_job(org, "payroll-export", grace=timedelta(minutes=15))
    ping(monitor, "fail", SLOT, TRACE_A)
    ping(monitor, "fail", SLOT + timedelta(minutes=5), TRACE_B)  # a retry
    overdue.check(SLOT + timedelta(days=1, minutes=20), PINGS)  # the next slot is missed

    current = JobMonitorState.objects.get(monitor=monitor)
    assert current.status == "late"
    assert (current.trouble_outcome, current.trouble_trace_id) == ("failure", TRACE_A)

    rid = uuid.uuid4()
    ping(monitor, "start", SLOT + timedelta(days=1, minutes=30), TRACE_B, rid=rid)
    ping(monitor, "success", SLOT + timedelta(days=1, minutes=40), TRACE_B, rid=rid)
    current = JobMonitorState.objects.get(monitor=monitor)
    assert (current.status, current.trouble_outcome, current.trouble_trace_id) == ("up", "", "")
