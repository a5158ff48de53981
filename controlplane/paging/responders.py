"""Escalation steps that reach people: whoever is on call in an on-call schedule.

`escalation.decide` treats a schedule as one more target; here its keys become ledger
rows, one per person (docs/paging.md, "On-call schedules in a step"):

- a trigger or reminder reaches whoever is on call in the schedule at that moment
  (`rota.who_is_on_call` over its shifts); nobody on call (a gap) writes one row
  saying so, with no responder, already given up: the ledger and the alert page show
  it, nothing is sent, and the step's channels go as ever;
- an acknowledge or resolve reaches the people the schedule's triggers and reminders
  of this alert reached, whoever is on call by then.

Each row is an email (channel None, kind email, name "<schedule>: <username>") to the
responder's address, never bundled; a Slack message of the same key mentions them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime

from controlplane.alerting.models import Alert
from controlplane.oncall import rota
from controlplane.oncall.models import OnCallSchedule, Responder, Shift
from controlplane.paging import payloads
from controlplane.paging.channels import ChannelKind, EmailConfig
from controlplane.paging.escalation import NotificationKey
from controlplane.paging.models import Notification

NOBODY = "nobody on call"
ASKING = ("trigger", "reminder")


def on_call(schedule_ids: Iterable[int], at: datetime) -> dict[int, list[Responder]]:
    """The responders on call in each schedule at `at` (one query)."""
    shifts = Shift.objects.filter(
        schedule_id__in=list(schedule_ids), start__lte=at, end__gt=at
    ).select_related("responder__user")
    by_schedule: dict[int, list[Shift]] = {}
    for shift in shifts:
        by_schedule.setdefault(shift.schedule_id, []).append(shift)
    found = {}
    for schedule_id, listed in by_schedule.items():
        responders = {s.responder_id: s.responder for s in listed}
        plain = [rota.Shift(s.responder_id, s.start, s.end, s.uid, s.override) for s in listed]
        found[schedule_id] = [responders[r] for r in rota.who_is_on_call(plain, at)]
    return found


def reached(alert: Alert, schedule_ids: Iterable[int]) -> dict[int, list[Responder]]:
    """The responders each schedule's triggers and reminders of `alert` reached."""
    rows = (
        Notification.objects.filter(
            alert=alert,
            schedule_id__in=list(schedule_ids),
            responder__isnull=False,
            event__in=ASKING,
        )
        .select_related("responder__user")
        .order_by("responder__user__username")
    )
    found: dict[int, dict[int, Responder]] = {}
    for row in rows:
        found.setdefault(row.schedule_id, {})[row.responder_id] = row.responder
    return {schedule: list(people.values()) for schedule, people in found.items()}


def rows(alert: Alert, keys: Sequence[NotificationKey], now: datetime) -> list[Notification]:
    """The ledger rows of the schedule keys among `keys` (channel keys are left out)."""
    keys = [key for key in keys if key.schedule]
    if not keys:
        return []
    schedules = OnCallSchedule.objects.in_bulk({key.schedule for key in keys})
    asking = {key.schedule for key in keys if key.event in ASKING}
    now_on_call = on_call(asking, now) if asking else {}
    following = {key.schedule for key in keys if key.event not in ASKING}
    told = reached(alert, following) if following else {}
    found = []
    for key in keys:
        schedule = schedules.get(key.schedule)
        if schedule is None:
            continue  # deleted since the snapshot: nobody to look up
        people = (now_on_call if key.event in ASKING else told).get(key.schedule, [])
        found += rows_for(alert, key, schedule, people, now)
    return found


def rows_for(
    alert: Alert,
    key: NotificationKey,
    schedule: OnCallSchedule,
    people: Sequence[Responder],
    now: datetime,
) -> list[Notification]:
    """One key's rows: one per person, or the row saying nobody was on call."""

    def row(responder: Responder | None, name: str, **fields) -> Notification:
        return Notification(
            organization_id=alert.organization_id,
            alert=alert,
            channel=None,
            responder=responder,
            schedule=schedule,
            channel_name=f"{schedule.slug}: {name}"[:64],
            channel_kind=ChannelKind.EMAIL,
            step=key.step,
            loop=key.loop,
            reminder=key.reminder,
            event=key.event,
            next_attempt_at=now,
            trace_id=alert.trace_id,
            is_test=alert.is_test,
            created_at=now,
            **fields,
        )

    if people:
        return [row(person, person.user.get_username()) for person in people]
    if key.event not in ASKING:
        return []  # nobody was reached: nobody to follow up with
    return [
        row(
            None,
            NOBODY,
            state=Notification.State.DEAD,
            last_error=(
                f"Nobody was on call in the schedule {schedule.slug} at "
                f"{now:%Y-%m-%d %H:%M:%S} UTC; the step's channels were notified."
            ),
        )
    ]


def email_config(row: Notification) -> EmailConfig | str:
    """The email channel a responder's row goes through, or why it cannot go."""
    if row.responder_id is None:
        return "nobody was on call: there is nobody to email"
    user = row.responder.user
    if not user.email:
        return f"{user.get_username()} has no email address: add one to their account"
    return EmailConfig(to=(user.email,))


def with_mentions(
    rows: Sequence[Notification], notices: Sequence[payloads.AlertNotice]
) -> list[payloads.AlertNotice]:
    """Slack notices naming, by member id, the responders paged by the same key."""
    found = []
    for row, notice in zip(rows, notices, strict=True):
        if row.alert_id is None:
            found.append(notice)
            continue
        ids = (
            Notification.objects.filter(
                alert_id=row.alert_id,
                step=row.step,
                loop=row.loop,
                reminder=row.reminder,
                event=row.event,
                responder__isnull=False,
            )
            .exclude(responder__slack_member_id="")
            .order_by("responder__slack_member_id")
            .values_list("responder__slack_member_id", flat=True)
            .distinct()
        )
        found.append(dataclasses.replace(notice, mentions=tuple(ids)))
    return found
