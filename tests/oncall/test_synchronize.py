"""calendar.synchronize against feeds served by a real HTTP server on loopback, over the
real database: good feeds replace shifts; every kind of bad one keeps the last good
shifts and records its error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django_celery_beat.models import PeriodicTask
from prometheus_client import REGISTRY

from controlplane.oncall import rota, synchronize
from controlplane.oncall.models import OnCallSchedule, Responder, ScheduleSync, Shift
from tests.oncall.conftest import Page, make_schedule
from tests.oncall.ics import calendar, event, rotation

pytestmark = pytest.mark.django_db

# Mondays at 09:00 Paris, alice then bob, from 16 March 2026.
WEEKLY = rotation("Europe/Paris", ["alice", "bob"], "20260316", "090000", 7, "WEEKLY")
NOW = datetime(2026, 3, 25, 12, tzinfo=UTC)  # a Wednesday of bob's week


def on_call(schedule: OnCallSchedule, at: datetime) -> list[str]:
    shifts = [
        rota.Shift(s.responder.user_id, s.start, s.end, s.uid, s.override)
        for s in schedule.shifts.select_related("responder")
    ]
    names = {r.user_id: r.user.username for r in Responder.objects.select_related("user")}
    return [names[user] for user in rota.who_is_on_call(shifts, at)]


def test_a_good_feed_replaces_the_shifts_in_a_span(feeds, org, people, spans):
    feeds.pages["/team.ics"] = Page(body=WEEKLY)
    schedule = make_schedule(org, ics_url=feeds.url("/team.ics"))

    state = synchronize.synchronize(schedule, NOW)

    assert (state.last_synced_at, state.last_error, state.consecutive_failures) == (NOW, "", 0)
    assert on_call(schedule, NOW) == ["bob"]
    # The spring change moved the handover from 08:00 to 07:00 UTC.
    assert on_call(schedule, datetime(2026, 3, 30, 6, 59, tzinfo=UTC)) == ["bob"]
    assert on_call(schedule, datetime(2026, 3, 30, 7, 0, tzinfo=UTC)) == ["alice"]
    # A week back and six ahead are kept.
    first, last = Shift.objects.order_by("start").first(), Shift.objects.order_by("end").last()
    assert first.start <= NOW - synchronize.PAST
    assert last.end >= NOW + synchronize.HORIZON
    [span] = [s for s in spans.get_finished_spans() if s.name == "calendar.synchronize"]
    assert span.attributes["oncall.schedule"] == "primary"
    assert span.attributes["oncall.organization"] == "acme"
    assert span.attributes["app.organization.id"] == str(org.pk)
    assert state.trace_id == format(span.context.trace_id, "032x")


BAD_FEEDS = [
    (Page(body=b"\x00\x01 not a calendar at all"), "The calendar is not an iCalendar file"),
    (
        Page(body=b"<html><body>Sign in to see this calendar</body></html>"),
        "The calendar is an HTML page",
    ),
    (
        Page(body=WEEKLY, headers={"Content-Type": "text/html"}),
        "The calendar is an HTML page",
    ),
    (Page(body=b"x" * (2 * 1024 * 1024 + 1)), "The calendar is larger than 2 MiB"),
    (Page(status=500, body=b"oops"), "The calendar answered HTTP 500."),
    (Page(status=404), "The calendar answered HTTP 404."),
    (Page(body=calendar()), "The calendar has no events"),
    (
        Page(body=calendar(event("m", "DTSTART;TZID=Mars/Olympus:20260325T090000", "SUMMARY:bob"))),
        "names the time zone 'Mars/Olympus'",
    ),
    (
        Page(status=302, headers={"Location": "http://10.0.0.1/calendar.ics"}),
        "redirects are not followed",
    ),
]


@pytest.mark.parametrize(("page", "says"), BAD_FEEDS)
def test_a_bad_feed_keeps_the_last_good_shifts_and_records_its_error(
    feeds, org, people, page, says
):
    feeds.pages["/team.ics"] = Page(body=WEEKLY)
    schedule = make_schedule(org, ics_url=feeds.url("/team.ics"))
    synchronize.synchronize(schedule, NOW)
    kept = list(Shift.objects.values_list("responder", "start", "end").order_by("start"))
    feeds.pages["/team.ics"] = page
    later = NOW + timedelta(minutes=15)

    state = synchronize.synchronize(schedule, later)

    assert says in state.last_error
    assert (state.last_error_at, state.last_synced_at) == (later, NOW)
    assert state.consecutive_failures == 1
    assert list(Shift.objects.values_list("responder", "start", "end").order_by("start")) == kept
    assert on_call(schedule, later) == ["bob"]


def test_an_unreachable_feed_counts_failures_in_a_row_and_a_good_one_clears_them(
    feeds, org, people
):
    schedule = make_schedule(org, ics_url="http://127.0.0.1:9/nothing-listens-here.ics")

    synchronize.synchronize(schedule, NOW)
    state = synchronize.synchronize(schedule, NOW + timedelta(minutes=1))

    assert state.consecutive_failures == 2
    assert "The calendar is unreachable" in state.last_error
    feeds.pages["/team.ics"] = Page(body=WEEKLY)
    OnCallSchedule.objects.filter(pk=schedule.pk).update(ics_url=feeds.url("/team.ics"))
    schedule.refresh_from_db()
    state = synchronize.synchronize(schedule, NOW + timedelta(minutes=2))
    assert (state.consecutive_failures, state.last_error) == (0, "")


def test_a_private_address_is_refused_when_connecting(feeds, org, people, settings):
    feeds.pages["/team.ics"] = Page(body=WEEKLY)
    schedule = make_schedule(org, ics_url=feeds.url("/team.ics"))
    settings.ALLOWED_PRIVATE_NETWORKS = []

    state = synchronize.synchronize(schedule, NOW)

    assert "127.0.0.1 is a loopback address; set ALLOWED_PRIVATE_NETWORKS" in state.last_error
    assert feeds.requests == []


def test_an_unchanged_feed_is_asked_conditionally_and_its_stored_body_moves_on(feeds, org, people):
    feeds.pages["/team.ics"] = Page(body=WEEKLY, etag='"v1"')
    schedule = make_schedule(org, ics_url=feeds.url("/team.ics"))
    synchronize.synchronize(schedule, NOW)
    weeks_later = NOW + timedelta(weeks=3)

    state = synchronize.synchronize(schedule, weeks_later)

    assert feeds.requests[-1][1].get("If-None-Match") == '"v1"'
    assert (state.last_synced_at, state.last_error) == (weeks_later, "")
    # The shifts were expanded again from the stored body, over the moved horizon.
    assert Shift.objects.order_by("end").last().end >= weeks_later + synchronize.HORIZON


def test_an_edit_forgets_the_validators(feeds, org, people):
    feeds.pages["/team.ics"] = Page(body=WEEKLY, etag='"v1"')
    schedule = make_schedule(org, ics_url=feeds.url("/team.ics"))
    synchronize.synchronize(schedule, NOW)

    synchronize.mark_due(schedule, NOW)
    synchronize.synchronize(schedule, NOW)

    assert "If-None-Match" not in feeds.requests[-1][1]


def test_the_override_calendar_wins_and_unknown_names_are_reported(feeds, org, people):
    feeds.pages["/team.ics"] = Page(body=WEEKLY)
    override = calendar(
        event(
            "swap",
            "DTSTART;TZID=Europe/Paris:20260325T120000",
            "DTEND;TZID=Europe/Paris:20260325T180000",
            "SUMMARY:alice",
        ),
        event("typo", "DTSTART:20260401T000000Z", "DTEND:20260401T010000Z", "SUMMARY:alcie"),
    )
    schedule = make_schedule(
        org, ics_url=feeds.url("/team.ics"), override_ics_text=override.decode()
    )

    state = synchronize.synchronize(schedule, NOW)

    assert on_call(schedule, datetime(2026, 3, 25, 10, 59, tzinfo=UTC)) == ["bob"]
    assert on_call(schedule, datetime(2026, 3, 25, 11, tzinfo=UTC)) == ["alice"]
    assert on_call(schedule, datetime(2026, 3, 25, 17, tzinfo=UTC)) == ["bob"]
    assert state.unknown_names == [
        "'alcie' (event 'typo', 2026-04-01 00:00 UTC) is no member of the organisation."
    ]
    assert Shift.objects.filter(override=True).count() == 1


def test_a_member_of_another_organisation_is_nobody_here(org, other_org, member):
    member(other_org, username="mallory")
    body = calendar(
        event("e", "DTSTART:20260325T000000Z", "DTEND:20260326T000000Z", "SUMMARY:mallory")
    )
    schedule = make_schedule(org, ics_text=body.decode())

    state = synchronize.synchronize(schedule, NOW)

    assert Shift.objects.count() == 0
    assert "'mallory'" in state.last_error
    assert state.consecutive_failures == 1


def test_a_feed_naming_nobody_known_keeps_the_last_good_shifts(feeds, org, people):
    feeds.pages["/team.ics"] = Page(body=WEEKLY)
    schedule = make_schedule(org, ics_url=feeds.url("/team.ics"))
    synchronize.synchronize(schedule, NOW)
    good = sorted(Shift.objects.values_list("responder__user__username", "start"))
    assert good

    # The summaries renamed to full names nobody is known by: read as it stands, the
    # schedule would be emptied.
    feeds.pages["/team.ics"] = Page(
        body=WEEKLY.replace(b"SUMMARY:alice", b"SUMMARY:Alice Martin").replace(
            b"SUMMARY:bob", b"SUMMARY:Bob Smith"
        )
    )
    state = synchronize.synchronize(schedule, NOW + timedelta(minutes=5))

    assert sorted(Shift.objects.values_list("responder__user__username", "start")) == good
    assert "name nobody of the organisation" in state.last_error
    assert state.consecutive_failures == 1


def test_a_rule_the_library_cannot_read_is_recorded_as_a_failure(org, people):
    schedule = make_schedule(org, ics_text=WEEKLY.decode())
    synchronize.synchronize(schedule, NOW)
    kept = Shift.objects.count()
    assert kept

    broken = WEEKLY.decode().replace("RRULE:FREQ=WEEKLY", "RRULE:FREQ=WEEKLY;INTERVAL=x")
    assert "INTERVAL=x" in broken
    schedule.ics_text = broken
    schedule.save()
    state = synchronize.synchronize(schedule, NOW + timedelta(minutes=5))

    assert state.consecutive_failures == 1
    assert "cannot be read" in state.last_error or "could not be read" in state.last_error
    assert Shift.objects.count() == kept


def test_an_ics_export_reads_back_as_the_same_shifts(org, people):
    from controlplane.oncall.views import export_body

    schedule = make_schedule(org, ics_text=WEEKLY.decode())
    synchronize.synchronize(schedule, NOW)
    before = list(Shift.objects.values_list("responder__user__username", "start", "end"))

    copy = make_schedule(org, "copy", ics_text=export_body(schedule, NOW).decode())
    synchronize.synchronize(copy, NOW)

    after = list(copy.shifts.values_list("responder__user__username", "start", "end"))
    assert after == before
    assert len(after) > 4


def test_the_beat_run_takes_due_schedules_once_and_sets_the_metrics(feeds, org, people):
    feeds.pages["/team.ics"] = Page(body=WEEKLY)
    make_schedule(org, ics_url=feeds.url("/team.ics"))
    make_schedule(org, "broken", ics_url=feeds.url("/missing.ics"))
    now = datetime.now(UTC)

    report = synchronize.run(now)
    again = synchronize.run(now + timedelta(seconds=30))

    assert (report.synchronized, report.failed) == (["primary"], ["broken"])
    assert (again.synchronized, again.failed) == ([], [])
    assert ScheduleSync.objects.get(schedule__slug="primary").due_at > now + timedelta(minutes=14)
    sample = REGISTRY.get_sample_value
    assert sample("controlplane_calendar_sync_backlog") == 1.0  # the failing one
    assert sample("controlplane_calendar_sync_delay_seconds", {"schedule": "acme/primary"}) < 60
    assert sample("controlplane_calendar_sync_delay_seconds", {"schedule": "acme/broken"}) >= 0


def test_figures_count_due_failing_and_never_synchronised_schedules():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    created = now - timedelta(hours=1)
    rows = [
        ("a/fine", created, now - timedelta(minutes=5), now + timedelta(minutes=10), 0),
        ("a/late", created, now - timedelta(minutes=40), now - timedelta(minutes=25), 0),
        ("a/failing", created, now - timedelta(hours=2), now + timedelta(minutes=10), 3),
        ("a/new", created, None, None, 0),
        ("a/just-due", created, now - timedelta(minutes=15), now - timedelta(seconds=10), 0),
    ]

    found = synchronize.figures(rows, now)

    assert found.backlog == 3
    assert found.delays == {
        "a/fine": 300.0,
        "a/late": 2400.0,
        "a/failing": 7200.0,
        "a/new": 3600.0,
        "a/just-due": 900.0,
    }
    assert found.oldest == 7200.0


def test_beat_runs_the_synchronisation_every_30_seconds():
    task = PeriodicTask.objects.get(task="calendar.synchronize")

    assert (task.enabled, task.interval.every, task.interval.period) == (True, 30, "seconds")


def test_an_edit_while_a_feed_is_read_voids_what_was_read(feeds, org, people):
    feeds.pages["/old.ics"] = Page(body=WEEKLY, etag='"old"')
    schedule = make_schedule(org, ics_url=feeds.url("/old.ics"))
    state = ScheduleSync.objects.get_or_create(schedule=schedule)[0]
    main = synchronize.read_feed(schedule.ics_url, "", "", "", b"")
    plan = synchronize.decide(main, None, schedule.zone, synchronize.members(org.pk), NOW)
    assert plan.shifts

    # Meanwhile a manager points the schedule at another calendar: it is due at once.
    OnCallSchedule.objects.filter(pk=schedule.pk).update(ics_url=feeds.url("/new.ics"))
    synchronize.mark_due(schedule, NOW)
    state = synchronize.apply(schedule, plan, main, None, NOW + timedelta(seconds=1))

    assert Shift.objects.count() == 0, "the old calendar's shifts are not taken"
    assert (state.due_at, state.main_etag) == (NOW, ""), "due at once, no old validator"
