"""The schedules API, the on-call pages and the ICS export, over the real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from controlplane.catalog.models import ApiToken, Role
from controlplane.oncall import synchronize
from controlplane.oncall.models import OnCallSchedule, ScheduleSync
from tests.factories import make_schedule
from tests.oncall.ics import calendar, event, rotation

pytestmark = pytest.mark.django_db


def write_client(org) -> APIClient:
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(org, ApiToken.Scope.WRITE, 'w')[1]}"
    )
    return client


def daily_from_now(people: list[str], zone: str = "UTC") -> bytes:
    """A daily rotation handing over at midnight, started a week ago: someone always on."""
    start = timezone.now() - timedelta(days=7)
    return rotation(zone, people, f"{start:%Y%m%d}", "000000", 1)


def test_a_schedule_is_created_checked_and_made_due(org):
    client = write_client(org)
    body = {
        "slug": "primary",
        "name": "Primary",
        "time_zone": "Europe/Paris",
        "ics_url": "https://calendar.example.com/team.ics",
        "sync_interval": "5m",
    }

    answer = client.post("/api/v1/schedules/", body, format="json")

    assert answer.status_code == 201, answer.json()
    assert answer.json() | {"gap": None} == {
        **body,
        "ics_text": "",
        "override_ics_url": "",
        "override_ics_text": "",
        "last_synced_at": None,
        "last_error": "",
        "last_error_at": None,
        "unknown_names": [],
        "gap": None,
    }
    assert ScheduleSync.objects.get(schedule__slug="primary").due_at <= timezone.now()


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {"ics_url": "http://10.1.2.3/cal.ics"},
            {
                "ics_url": [
                    "10.1.2.3 is a private address; set ALLOWED_PRIVATE_NETWORKS to allow it"
                ]
            },
        ),
        (
            {"ics_url": "file:///etc/passwd"},
            {"ics_url": ["Use an http:// or https:// address (webcal:// is https:// here)."]},
        ),
        (
            {"ics_url": "https://cal.example/a.ics", "ics_text": "BEGIN:VCALENDAR"},
            {"ics_text": ["Give the calendar's URL or its text, not both."]},
        ),
        ({}, {"ics_url": ["Give the calendar's URL or paste its text."]}),
        (
            {"ics_url": "https://cal.example/a.ics", "time_zone": "Mars/Olympus"},
            {"time_zone": ["'Mars/Olympus' is not an IANA time zone (e.g. Europe/Paris, UTC)."]},
        ),
        (
            {"ics_url": "https://cal.example/a.ics", "sync_interval": "10s"},
            {"sync_interval": ["Ensure this value is greater than or equal to 0:01:00."]},
        ),
        (
            {"ics_url": "https://cal.example/a.ics", "colour": "red"},
            {"colour": None},  # named, whatever the wording
        ),
    ],
)
def test_bad_schedules_are_refused_naming_the_field(org, body, errors):
    answer = write_client(org).post(
        "/api/v1/schedules/", {"slug": "s", "name": "S", **body}, format="json"
    )

    assert answer.status_code == 400
    found = answer.json()["errors"]
    assert set(found) == set(errors)
    for field, messages in errors.items():
        if messages is not None:
            assert found[field] == messages
    assert not OnCallSchedule.objects.exists()


def test_who_is_on_call_at_a_time_with_the_dst_overlap(org, member):
    alice = member(org, Role.RESPONDER, username="alice")
    member(org, Role.RESPONDER, username="bob")
    body = rotation("Europe/Paris", ["alice", "bob"], "20261023", "023000", 1)
    schedule = make_schedule(org, ics_text=body.decode())
    synchronize.synchronize(schedule, datetime(2026, 10, 24, tzinfo=UTC))
    client = write_client(org)

    overlap = client.get("/api/v1/schedules/primary/oncall/", {"at": "2026-10-25T01:00:00Z"})
    after = client.get("/api/v1/schedules/primary/oncall/", {"at": "2026-10-25T03:30:00+01:00"})
    bad = client.get("/api/v1/schedules/primary/oncall/", {"at": "tomorrow"})

    assert overlap.json() == {
        "schedule": {"slug": "primary", "name": "Primary"},
        "at": "2026-10-25T01:00:00Z",
        "responders": [
            {"username": "bob", "email": "bob@example.com"},
            {"username": "alice", "email": alice.email},
        ],
    }
    assert [r["username"] for r in after.json()["responders"]] == ["alice"]
    assert bad.status_code == 400
    assert "RFC 3339" in bad.json()["errors"]["at"][0]

    for edge in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        answer = client.get("/api/v1/schedules/primary/oncall/", {"at": edge})
        assert answer.status_code == 400, edge
        assert answer.json()["errors"]["at"] == ["That time is out of range."]


def test_the_list_flags_a_gap_and_its_queries_are_bounded(
    org, member, django_assert_max_num_queries
):
    member(org, Role.RESPONDER, username="alice")
    covered = make_schedule(org, "covered", ics_text=daily_from_now(["alice"]).decode())
    soon = timezone.now() + timedelta(hours=3)
    short = calendar(
        event(
            "e",
            f"DTSTART:{timezone.now() - timedelta(hours=1):%Y%m%dT%H%M%SZ}",
            f"DTEND:{soon:%Y%m%dT%H%M%SZ}",
            "SUMMARY:alice",
        )
    )
    ending = make_schedule(org, "ending", ics_text=short.decode())
    for schedule in (covered, ending):
        synchronize.synchronize(schedule)
    for index in range(5):
        make_schedule(org, f"more-{index}", ics_text=daily_from_now(["alice"]).decode())
    client = write_client(org)

    with django_assert_max_num_queries(6):
        answer = client.get("/api/v1/schedules/")

    gaps = {row["slug"]: row["gap"] for row in answer.json()["results"]}
    assert gaps["covered"] is None
    assert gaps["ending"][:16] == soon.strftime("%Y-%m-%dT%H:%M")
    # Never synchronised: nobody is on call now.
    assert gaps["more-0"] is not None


def test_sync_makes_the_schedule_due_and_patch_edits_it(org):
    schedule = make_schedule(org)
    ScheduleSync.objects.create(schedule=schedule, due_at=timezone.now() + timedelta(hours=1))
    client = write_client(org)

    synced = client.post("/api/v1/schedules/primary/sync/", {}, format="json")
    patched = client.patch("/api/v1/schedules/primary/", {"sync_interval": "1h"}, format="json")

    assert synced.status_code == 202
    assert ScheduleSync.objects.get(schedule=schedule).due_at <= timezone.now()
    assert patched.json()["sync_interval"] == "1h"


def test_the_pages_show_who_is_on_call_a_failing_feed_and_the_gap(
    client, org, member, django_assert_max_num_queries
):
    viewer = member(org, Role.VIEWER)
    member(org, Role.RESPONDER, username="alice")
    good = make_schedule(org, "good", name="Good", ics_text=daily_from_now(["alice"]).decode())
    synchronize.synchronize(good)
    broken = make_schedule(
        org, "broken", name="Broken", ics_text=daily_from_now(["alice"]).decode()
    )
    synchronize.synchronize(broken)
    OnCallSchedule.objects.filter(pk=broken.pk).update(ics_text="<html>oops</html>")
    broken.refresh_from_db()
    synchronize.synchronize(broken)
    empty = make_schedule(org, "empty", name="Empty")
    synchronize.synchronize(empty)
    client.force_login(viewer)

    with django_assert_max_num_queries(8):
        listing = client.get("/oncall/").content.decode()
    detail = client.get("/oncall/good/").content.decode()

    assert listing.count("On call now: <strong>alice</strong>") == 2
    assert "The calendar is an HTML page" in listing
    assert "the last good shifts are kept" in listing
    assert 'On call now: <strong class="state-firing">nobody</strong>' in listing
    assert "'nobody' (event 'one'" not in listing  # unknown names are on the detail page
    assert detail.count('class="card shift"') >= 14
    assert good.export_path() in detail


def test_the_export_needs_its_key_only_and_reads_back(client, org, member):
    member(org, Role.RESPONDER, username="alice")
    schedule = make_schedule(org, ics_text=daily_from_now(["alice"]).decode())
    synchronize.synchronize(schedule)

    answer = client.get(schedule.export_path())
    wrong = client.get("/oncall/feeds/not-the-key-of-anything-at-all.ics")

    assert answer.status_code == 200
    assert answer["Content-Type"] == "text/calendar"
    assert b"SUMMARY:alice@example.com" in answer.content
    assert wrong.status_code == 404
    copy = make_schedule(org, "copy", ics_text=answer.content.decode())
    synchronize.synchronize(copy)
    assert list(copy.shifts.values_list("responder", "start", "end")) == list(
        schedule.shifts.values_list("responder", "start", "end")
    )
