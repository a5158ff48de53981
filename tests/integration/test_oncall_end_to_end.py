"""On-call end to end: a real Celery worker and beat synchronise a schedule from a feed
served on loopback; the feed goes down, the built-in `calendar.queue` fires on its
internal signal (no Prometheus), and the organisation's default policy tells Slack,
email and PagerDuty, each message carrying the failed synchronisation's trace id; the
feed comes back, the alert resolves and the resolve is delivered.

The thresholds are made tiny: the worker's CALENDAR_QUEUE_* settings (a schedule late
as soon as it fails), the rule's `for` and interval, and beat's calendar tick.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from controlplane.alerting.models import Alert, AlertRule
from controlplane.oncall import synchronize
from controlplane.oncall.models import ScheduleSync
from tests import waiting
from tests.factories import make_channel, make_policy, make_schedule
from tests.integration.conftest import schedule_ticks
from tests.oncall.conftest import FeedServer, Page
from tests.oncall.ics import rotation
from tests.services import require_postgresql

pytestmark = pytest.mark.integration

TICKS = (
    "alerting: evaluate due rules",
    "alerting: dispatch alert events",
    "paging: escalate",
    "paging: deliver notifications",
    "oncall: synchronize calendars",
)
WEEKLY = rotation("Europe/Paris", ["alice", "bob"], "20260316", "090000", 7, "WEEKLY")


@pytest.fixture
def feed_server():
    server = FeedServer()
    yield server
    server.close()


def test_a_feed_going_down_pages_through_the_default_policy_and_its_return_resolves(
    celery_on_redis_server,
    org,
    member,
    feed_server,
    slack_receiver,
    pagerduty_receiver,
    smtp_receiver,
):
    require_postgresql()  # the worker, beat and the test share the database at once
    for name in ("alice", "bob"):
        member(org, "responder", username=name)
    receivers = {"slack": slack_receiver, "email": smtp_receiver, "pagerduty": pagerduty_receiver}
    channels = [
        make_channel(org, "ops-slack", "slack", url=f"{slack_receiver.url}/hooks/e2e"),
        make_channel(org, "ops-mail", "email", to=["oncall@example.com"]),
        make_channel(
            org, "ops-pager", "pagerduty", routing_key="R" * 32, url=f"{pagerduty_receiver.url}/v2"
        ),
    ]
    make_policy(org, "default", steps=[(0, channels)], is_default=True, notify_on_resolve=True)
    # The organisation got the built-in rule when it was made; its clock made tiny.
    rule = AlertRule.objects.get(organization=org, key="calendar.queue")
    assert rule.escalation_policy is None  # the default policy pages
    rule.for_duration = timedelta(seconds=1)
    rule.interval = timedelta(seconds=1)
    rule.save()

    feed_server.pages["/team.ics"] = Page(body=WEEKLY)
    schedule = make_schedule(org, "primary", ics_url=feed_server.url("/team.ics"))
    schedule_ticks(*TICKS)
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period="seconds")
    PeriodicTask.objects.filter(task="calendar.synchronize").update(
        interval=every_second, expire_seconds=None
    )
    worker = celery_on_redis_server.start(
        "solo",
        {
            "ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8,::1/128",
            "EMAIL_URL": f"smtp://{smtp_receiver.host}:{smtp_receiver.port}",
            "DEFAULT_FROM_EMAIL": "controlplane@example.com",
            "CALENDAR_QUEUE_MOST_BACKLOG": "100",  # only a late schedule breaches
            "CALENDAR_QUEUE_LONGEST_DELAY_SECONDS": "0",
        },
        wait=False,
    )
    beat = celery_on_redis_server.start_beat(wait=False)
    celery_on_redis_server.until_ready(worker, beat)
    log = celery_on_redis_server.log_of(worker)

    def synchronised(failing: bool) -> ScheduleSync | None:
        state = ScheduleSync.objects.filter(schedule=schedule).first()
        if state is None or state.last_attempt_at is None or state.failing != failing:
            return None
        return state

    waiting.until(
        lambda: synchronised(failing=False) and synchronised(failing=False).last_synced_at,
        what="the worker to synchronise the schedule from the feed",
        process=worker,
        log=log,
    )
    assert not Alert.objects.filter(rule=rule).exists()

    # The feed goes down; "synchronise now" rather than waiting for its interval.
    feed_server.pages["/team.ics"] = Page(status=503, body=b"down for maintenance")
    synchronize.mark_due(schedule)
    failed = waiting.until(
        lambda: synchronised(failing=True),
        what="the worker to record the feed's failure",
        process=worker,
        log=log,
    )
    assert failed.last_error == "The calendar answered HTTP 503."
    assert failed.trace_id, "the failed synchronisation ran in a trace"
    alert = waiting.until(
        lambda: Alert.objects.filter(rule=rule, state=Alert.State.FIRING).first(),
        what="calendar.queue to fire on the failing schedule",
        process=worker,
        log=log,
    )
    assert alert.labels == {"reason": "late", "schedule": "primary", "trace_id": failed.trace_id}

    def told(kind: str, event: str):
        return waiting.until(
            lambda: [
                n
                for n in receivers[kind].delivered()
                if (n.alert_id, n.event)
                == (
                    alert.pk,
                    event,
                )
            ],
            what=f"the {kind} receiver to be told {event} of alert {alert.pk}",
            process=worker,
            log=log,
        )

    for kind in receivers:
        [notice] = told(kind, "trigger")
        assert notice.trace_id == alert.trace_id, kind  # the evaluation's trace
    # Each message carries the failed synchronisation's trace id (the alert's label).
    assert failed.trace_id in slack_receiver.requests[0].raw.decode()
    assert failed.trace_id in pagerduty_receiver.requests[0].raw.decode()
    assert failed.trace_id in smtp_receiver.messages[0].message.as_string()

    # The feed comes back: the next synchronisation clears the failure, the alert resolves.
    feed_server.pages["/team.ics"] = Page(body=WEEKLY)
    synchronize.mark_due(schedule)
    waiting.until(
        lambda: Alert.objects.filter(pk=alert.pk, state=Alert.State.RESOLVED).exists(),
        what="calendar.queue to resolve once the feed is back",
        process=worker,
        log=log,
    )
    for kind in receivers:
        assert len(told(kind, "resolve")) == 1
