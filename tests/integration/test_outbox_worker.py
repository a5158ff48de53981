"""The alert outbox with real workers: one killed between claiming an event and
recording what it did, and the event taken again, once, by the next worker."""

from __future__ import annotations

import os
import signal

import pytest

from controlplane.alerting.models import AlertEvent
from controlplane.alerting.tasks import dispatch_alert_events
from tests import waiting
from tests.factories import make_alert, make_rule
from tests.services import require_postgresql

pytestmark = pytest.mark.integration

LEASE_SECONDS = 3


def attempts(directory) -> list[tuple[int, int]]:
    log = directory / "attempts.log"
    if not log.exists():
        return []
    return [tuple(map(int, line.split())) for line in log.read_text().splitlines()]


def test_a_worker_killed_mid_event_leaves_it_to_the_next_worker_once(
    celery_workers, org, tmp_path, settings
):
    require_postgresql()
    env = {
        "ALERT_EVENT_CONSUMERS": "held=tests.integration.outbox_consumers.held",
        "ALERT_EVENT_LEASE_SECONDS": str(LEASE_SECONDS),
        "OUTBOX_TEST_DIR": str(tmp_path),
    }
    (tmp_path / "hold").touch()
    first = celery_workers.start("first", env=env)

    settings.ALERT_EVENT_NUDGE = True
    alert = make_alert(make_rule(org))  # its commit nudges a worker to dispatch
    event = alert.events.get(kind="opened")

    [(pk, pid)] = waiting.until(
        lambda: attempts(tmp_path) or None,
        what="the first worker to take the event",
        process=first,
        log=celery_workers.log_of(first),
    )
    assert (pk, pid) == (event.pk, first.pid)
    os.kill(first.pid, signal.SIGKILL)  # between claiming and recording
    first.wait(30)
    (tmp_path / "hold").unlink()
    event.refresh_from_db()
    assert event.dispatch == "pending"
    assert event.dispatch_attempts == 1

    second = celery_workers.start("second", env=env)

    def until_recorded(pending: AlertEvent, what: str) -> None:
        def recorded():
            dispatch_alert_events.delay()  # beat's tick, by hand
            pending.refresh_from_db()
            return pending.dispatch == "done"

        waiting.until(recorded, what=what, process=second, log=celery_workers.log_of(second))

    until_recorded(event, "the second worker to record the event once the lease ran out")
    # More ticks change nothing: it was recorded once. A later alert's event, recorded
    # after those ticks, shows the worker went through them.
    for _ in range(3):
        dispatch_alert_events.delay()
    later = make_alert(make_rule(org, "later"), "fp-later").events.get(kind="opened")

    until_recorded(later, "the second worker to record a later event")
    event.refresh_from_db()

    assert event.dispatch == AlertEvent.Dispatch.DONE
    assert event.dispatch_attempts == 2
    # Paging (built in) took the event too, in the same transaction.
    assert event.dispatch_note == (
        f"held: recorded by {second.pid}; paging: no escalation policy: nobody is notified"
    )
    assert attempts(tmp_path) == [
        (event.pk, first.pid),
        (event.pk, second.pid),
        (later.pk, second.pid),
    ]
