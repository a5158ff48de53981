"""seed_demo_oncall: two responders on a weekly rota from a generated ICS file, shown on
/oncall/, paged by the demo policy's second step."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from controlplane.alerting import outbox
from controlplane.catalog.models import Organization, Role
from controlplane.oncall import calendars, rota
from controlplane.oncall.management.commands.seed_demo_oncall import weekly_rotation
from controlplane.oncall.models import OnCallSchedule
from controlplane.paging import engine
from controlplane.paging.models import EscalationPolicy, Notification
from tests.factories import make_alert, make_rule

MONDAY = date(2026, 3, 23)  # the week before the spring change in Paris


def test_the_rotation_alternates_weekly_with_nobody_left_out_across_dst():
    text = weekly_rotation(["a@example.com", "b@example.com"], "Europe/Paris", MONDAY)
    paris = OnCallSchedule(time_zone="Europe/Paris").zone
    found = calendars.read(
        text.encode(),
        paris,
        datetime(2026, 3, 16, tzinfo=UTC),
        datetime(2026, 4, 13, tzinfo=UTC),
        2**21,
    )
    names = {"a@example.com": 1, "b@example.com": 2}
    shifts, unknown = rota.assign(found, names)

    assert unknown == []
    on_call = [
        rota.who_is_on_call(shifts, at)
        for at in (
            datetime(2026, 3, 23, 7, 59, tzinfo=UTC),  # Monday 08:59 Paris: b's week ends
            datetime(2026, 3, 23, 8, 0, tzinfo=UTC),  # 09:00 CET: a takes over
            datetime(2026, 3, 30, 6, 59, tzinfo=UTC),
            datetime(2026, 3, 30, 7, 0, tzinfo=UTC),  # 09:00 CEST: b again
        )
    ]
    assert on_call == [[2], [1], [1], [2]]
    assert rota.first_gap(shifts, datetime(2026, 3, 17, tzinfo=UTC)) is None


@pytest.fixture
def demo(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    return Organization.objects.create(slug="demo", name="Demo organisation")


def seed() -> str:
    out = io.StringIO()
    call_command("seed_demo_paging", stdout=out)
    call_command("seed_demo_oncall", stdout=out)
    return out.getvalue()


def test_the_demo_rota_shows_who_is_on_call_and_the_second_step_pages_them(
    demo, client, member, tmp_path
):
    said = seed()
    seed()  # again: nothing doubles

    schedule = OnCallSchedule.objects.get(organization=demo, slug="demo-rota")
    assert (tmp_path / "demo" / "oncall.ics").read_text() == schedule.ics_text
    assert schedule.sync.last_error == ""
    assert schedule.sync.last_synced_at
    now = timezone.now()
    [on_call] = schedule.shifts.filter(start__lte=now, end__gt=now)
    name = on_call.responder.user.get_username()
    assert name in ("demo-alice", "demo-bob")
    assert f"on call now: {name}" in said
    client.force_login(member(demo, Role.VIEWER))
    assert name in client.get("/oncall/").content.decode()

    policy = EscalationPolicy.objects.get(organization=demo, is_default=True)
    assert [len(s.schedules) for s in policy.snapshot().steps] == [0, 1]
    alert = make_alert(make_rule(demo, "demo.rule"))
    outbox.drain()
    engine.escalate_due(alert.started_at + timedelta(minutes=1))
    assert Notification.objects.filter(alert=alert, responder=on_call.responder).count() == 1
