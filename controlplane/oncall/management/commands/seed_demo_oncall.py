"""manage.py seed_demo_oncall: the demo organisation's on-call rota.

- two demo responders, `demo-alice` and `demo-bob` (members with the responder role,
  no password: they are paged, they do not sign in);
- a weekly rotation of the two, handing over on Mondays at 09:00 Europe/Paris, written
  as an ICS file (VAR_DIR/demo/oncall.ics) and pasted into the schedule `demo-rota`,
  synchronised at once so that /oncall/ shows who is on call;
- a second step on the demo's policy (seed_demo_paging's `demo-sinks`), a minute after
  the first, paging whoever is on call in `demo-rota` by email (printed by the worker).

Run again, it writes the ICS file anew (the rotation starts from the current week) and
changes nothing else someone has edited: a policy with more than its first step, or a
schedule reading a URL, stays as it is.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from controlplane.catalog.models import Membership, Organization, Role
from controlplane.oncall import synchronize
from controlplane.oncall.models import OnCallSchedule
from controlplane.paging.management.commands.seed_demo_paging import POLICY
from controlplane.paging.models import EscalationPolicy, EscalationStep

SCHEDULE = "demo-rota"
ZONE = "Europe/Paris"
HANDOVER = "090000"
PEOPLE = [("demo-alice", "alice@example.com"), ("demo-bob", "bob@example.com")]
SECOND_STEP_DELAY = timedelta(minutes=1)


def weekly_rotation(people: list[str], zone: str, monday: date) -> str:
    """An ICS calendar where `people` take turns of a week, each turn starting on a
    Monday at 09:00 in `zone`; the last of them holds the week before `monday`, so
    nobody's turn starts in the future with a gap before it. Pure."""
    period = len(people)
    events = []
    for index, person in enumerate(people):
        offset = index if index < period - 1 else -1
        begins = monday + timedelta(weeks=offset)
        ends = begins + timedelta(weeks=1)
        events += [
            "BEGIN:VEVENT",
            f"UID:demo-rota-{index}@controlplane",
            "DTSTAMP:20260101T000000Z",
            f"DTSTART;TZID={zone}:{begins:%Y%m%d}T{HANDOVER}",
            f"DTEND;TZID={zone}:{ends:%Y%m%d}T{HANDOVER}",
            f"RRULE:FREQ=WEEKLY;INTERVAL={period}",
            f"SUMMARY:On call: {person}",
            f"ATTENDEE;CN={person}:mailto:{person}",
            "END:VEVENT",
        ]
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//controlplane//demo//EN", *events]
    return "\r\n".join([*lines, "END:VCALENDAR"]) + "\r\n"


class Command(BaseCommand):
    help = (
        "Give the demo organisation two responders, a weekly on-call rota from a "
        "generated ICS file, and a second policy step paging whoever is on call."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", default="demo", help="organisation slug (demo)")

    def handle(self, *args, org: str, **options) -> None:
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"No organisation with the slug {org!r}: run seed_demo first.")
        with transaction.atomic():
            emails = _responders(organization)
            today = timezone.localtime(timezone.now(), timezone=ZoneInfo(ZONE)).date()
            text = weekly_rotation(emails, ZONE, today - timedelta(days=today.weekday()))
            path = Path(settings.VAR_DIR) / "demo" / "oncall.ics"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            schedule = _schedule(organization, path.read_text())
            stepped = _second_step(organization, schedule)
        state = synchronize.synchronize(schedule)
        on_call = ", ".join(
            s.responder.user.get_username()
            for s in schedule.shifts.select_related("responder__user").filter(
                start__lte=timezone.now(), end__gt=timezone.now()
            )
        )
        self.stdout.write(
            f"On call: schedule {schedule.slug!r} from {path} (a weekly rotation of "
            f"{', '.join(name for name, _ in PEOPLE)}); on call now: {on_call or 'nobody'}"
            + (f" (sync error: {state.last_error})" if state.last_error else "")
        )
        if stepped:
            self.stdout.write(
                f"  Policy {POLICY!r}: its second step, {SECOND_STEP_DELAY.seconds} s after "
                f"the first, emails whoever is on call in {schedule.slug!r}."
            )


def _responders(organization: Organization) -> list[str]:
    """The demo responders, members of the organisation; their email addresses."""
    User = get_user_model()
    for username, email in PEOPLE:
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User(username=username, email=email)
            user.set_unusable_password()
            user.save()
        Membership.objects.get_or_create(
            organization=organization, user=user, defaults={"role": Role.RESPONDER}
        )
    return [email for _, email in PEOPLE]


def _schedule(organization: Organization, text: str) -> OnCallSchedule:
    schedule = OnCallSchedule.objects.filter(organization=organization, slug=SCHEDULE).first()
    if schedule is None:
        schedule = OnCallSchedule(
            organization=organization, slug=SCHEDULE, name="Demo rota", time_zone=ZONE
        )
    if schedule.ics_url:
        return schedule  # someone pointed it at a real calendar: theirs now
    schedule.ics_text = text
    schedule.full_clean()
    schedule.save()
    synchronize.mark_due(schedule)
    return schedule


def _second_step(organization: Organization, schedule: OnCallSchedule) -> bool:
    """The demo policy's second step paging the rota, added once to the policy as
    seed_demo_paging made it (one step); True when the policy has it."""
    policy = EscalationPolicy.objects.filter(organization=organization, slug=POLICY).first()
    if policy is None:
        return False
    steps = list(policy.steps.order_by("position"))
    if len(steps) == 1:
        step = EscalationStep.objects.create(policy=policy, position=1, delay=SECOND_STEP_DELAY)
        step.schedules.set([schedule])
        # A new version: alerts open now keep the one they started on.
        EscalationPolicy.objects.filter(pk=policy.pk).update(version=F("version") + 1)
        policy.check_snapshot()
        return True
    return any(s.schedules.filter(pk=schedule.pk).exists() for s in steps)
