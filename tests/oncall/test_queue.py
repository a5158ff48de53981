"""The calendar.queue signal and the built-in rule reading it, without Prometheus."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from controlplane.alerting import evaluation
from controlplane.alerting.internal_signals import measure, registry
from controlplane.alerting.models import Alert, AlertRule
from controlplane.catalog.models import Organization
from controlplane.oncall import queue, synchronize
from controlplane.oncall.models import ScheduleSync
from runbooks.models import Runbook
from tests.oncall.conftest import Page, make_schedule
from tests.oncall.ics import rotation

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def figures(**rows) -> synchronize.Figures:
    """Figures from slug=(hours since the last success, due in minutes, failures)."""
    return synchronize.figures(
        (
            (
                slug,
                NOW - timedelta(days=1),
                NOW - timedelta(hours=age),
                NOW + timedelta(minutes=due),
                fails,
            )
            for slug, (age, due, fails) in rows.items()
        ),
        NOW,
    )


def test_only_breaching_series_come_out_each_with_its_own_limit():
    found = figures(
        fine=(0.1, 10, 0),
        failing=(3, 10, 4),  # failing for long: late
        slow=(2, -30, 0),  # due half an hour ago, never taken: late
        daily=(20, 240, 0),  # read 20 hours ago, due in 4: on time
        just_failed=(0.5, 10, 1),  # failing, but its last success is recent
    )

    series = queue.breaches(found, {"failing": "ab" * 16}, queue.Limits(3, 3600))

    assert [(dict(s.labels), s.value) for s in series] == [
        ({"reason": "late", "schedule": "failing", "trace_id": "ab" * 16}, 3 * 3600.0),
        ({"reason": "late", "schedule": "slow", "trace_id": ""}, 2 * 3600.0),
    ]
    # The same figures with a backlog limit of 2: the three overdue ones are too many.
    series = queue.breaches(found, {}, queue.Limits(2, 3600))
    assert (dict(series[0].labels), series[0].value) == ({"reason": "backlog"}, 3.0)
    assert queue.breaches(figures(fine=(0.1, 10, 0)), {}, queue.Limits(0, 0)) == []


@pytest.mark.django_db
def test_the_signal_reads_one_organisations_schedules_with_their_sync_trace(
    org, other_org, settings
):
    settings.CALENDAR_QUEUE_MOST_BACKLOG = 5
    settings.CALENDAR_QUEUE_LONGEST_DELAY_SECONDS = 600
    now = timezone.now()
    broken = make_schedule(org, "broken")
    make_schedule(org, "fine")
    elsewhere = make_schedule(other_org, "broken")
    for schedule in (broken, elsewhere):
        ScheduleSync.objects.create(
            schedule=schedule,
            due_at=now + timedelta(minutes=10),
            last_synced_at=now - timedelta(hours=1),
            consecutive_failures=2,
            trace_id="cd" * 16,
        )
    ScheduleSync.objects.create(
        schedule=broken.organization.oncall_schedules.get(slug="fine"),
        due_at=now + timedelta(minutes=10),
        last_synced_at=now,
    )

    [series] = measure("calendar.queue", org.pk)

    assert dict(series.labels) == {"reason": "late", "schedule": "broken", "trace_id": "cd" * 16}
    assert 3600 <= series.value < 3700
    assert "calendar.queue" in registry


@pytest.mark.django_db
def test_every_organisation_gets_the_rule_linked_to_its_runbook_and_it_fires(db, settings):
    Runbook.objects.create(
        slug="calendar-queue", title="Calendar queue", summary="s", body="b", owner="sre"
    )
    org = Organization.objects.create(slug="new", name="New")
    rule = AlertRule.objects.get(organization=org, key="calendar.queue")
    assert (rule.builtin, rule.source, rule.runbook.slug) == (True, None, "calendar-queue")
    assert (rule.op, rule.threshold, rule.for_duration) == ("", None, timedelta(minutes=5))
    rule.full_clean()  # an internal signal the rule validation knows

    settings.CALENDAR_QUEUE_MOST_BACKLOG = 0
    make_schedule(org, "never-read")  # due since its creation: the backlog is 1
    now = timezone.now()
    evaluation.evaluate([rule], now + timedelta(minutes=2))
    assert not Alert.objects.filter(rule=rule).exists()  # pending for 5 minutes
    evaluation.evaluate([rule], now + timedelta(minutes=8))

    alert = Alert.objects.get(rule=rule)
    assert (alert.state, alert.labels["reason"]) == ("firing", "backlog")
    assert "On-call calendars behind (backlog)" in alert.annotations["summary"]


@pytest.mark.django_db
def test_a_failure_keeps_the_trace_of_the_first_failure_in_a_row(feeds, org, people):
    feeds.pages["/team.ics"] = Page(body=rotation("UTC", ["alice"], "20260101", "090000", 1))
    schedule = make_schedule(org, ics_url=feeds.url("/team.ics"))
    traces = []
    for status in (200, 500, 500, 200):
        feeds.pages["/team.ics"] = Page(status=status, body=feeds.pages["/team.ics"].body)
        state = synchronize.synchronize(schedule, NOW)
        traces.append(state.trace_id)

    ok, first_failure, second_failure, back = traces
    assert len({ok, first_failure, back}) == 3
    assert second_failure == first_failure  # the alert's trace_id label holds still
