"""The on-call pages: who is on call in each schedule, one schedule's next two weeks,
and each schedule's ICS export behind its secret URL."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from controlplane.catalog import tenancy
from controlplane.oncall import calendars, rota
from controlplane.oncall.models import OnCallSchedule, Shift

# The detail page's window, and the most schedules the list shows.
DETAIL_WINDOW = timedelta(weeks=2)
LIST_LIMIT = 200


@dataclass(frozen=True)
class Standing:
    """A schedule as the pages show it: who is on call now and next, and its gap."""

    schedule: OnCallSchedule
    now: list[str]
    next: Shift | None
    gap: datetime | None


def _visible(request: HttpRequest) -> QuerySet:
    return tenancy.scope(OnCallSchedule.objects.all(), tenancy.organization_ids(request.user))


def as_rota(shift: Shift) -> rota.Shift:
    return rota.Shift(shift.responder_id, shift.start, shift.end, shift.uid, shift.override)


def standing(schedule: OnCallSchedule, shifts: list[Shift], now: datetime) -> Standing:
    """`shifts` of the schedule covering at least [now, now + 24 h)."""
    plain = [as_rota(s) for s in shifts]
    names = {s.responder_id: s.responder.user.get_username() for s in shifts}
    upcoming = rota.next_shift(plain, now)
    following = next((s for s in shifts if upcoming and as_rota(s) == upcoming), None)
    return Standing(
        schedule=schedule,
        now=[names[r] for r in rota.who_is_on_call(plain, now)],
        next=following,
        gap=rota.first_gap(plain, now),
    )


def shifts_between(schedules: list[OnCallSchedule], start: datetime, end: datetime) -> QuerySet:
    """The shifts of `schedules` overlapping [start, end), in rota order, with their
    people: one query, for these pages and the overview."""
    return (
        Shift.objects.filter(schedule__in=schedules, end__gt=start, start__lt=end)
        .select_related("responder__user")
        .order_by("start", "end", "responder_id")
    )


@login_required
def index(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    schedules = list(
        _visible(request)
        .select_related("organization", "sync")
        .order_by("organization__slug", "slug")[:LIST_LIMIT]
    )
    by_schedule: dict[int, list[Shift]] = defaultdict(list)
    # Past the lookahead by a day: the "next" shift may start after the next 24 hours.
    for shift in shifts_between(schedules, now, now + rota.GAP_LOOKAHEAD + timedelta(days=1)):
        by_schedule[shift.schedule_id].append(shift)
    rows = [standing(s, by_schedule[s.pk], now) for s in schedules]
    return render(request, "oncall/list.html", {"rows": rows, "now": now})


def _named(request: HttpRequest, slug: str) -> OnCallSchedule:
    """The schedule of that slug among the reader's organisations (?organization=<slug>
    names one when several have it)."""
    found = _visible(request).filter(slug=slug).select_related("organization", "sync")
    wanted = request.GET.get("organization", "")
    if wanted:
        found = found.filter(organization__slug=wanted)
    schedule = found.order_by("organization__slug").first()
    if schedule is None:
        raise Http404("No such schedule.")
    return schedule


@login_required
def detail(request: HttpRequest, slug: str) -> HttpResponse:
    schedule = _named(request, slug)
    now = timezone.now()
    shifts = list(shifts_between([schedule], now, now + DETAIL_WINDOW))
    context = {
        "row": standing(schedule, shifts, now),
        "schedule": schedule,
        "shifts": shifts,
        "now": now,
        "export_url": request.build_absolute_uri(schedule.export_path()),
    }
    return render(request, "oncall/detail.html", context)


def export_body(schedule: OnCallSchedule, now: datetime) -> bytes:
    """The schedule's resolved shifts (overrides applied) as an ICS calendar: each
    names its responder by email (username when there is none), which a schedule
    reading it back matches to the same person."""
    shifts = schedule.shifts.select_related("responder__user").order_by("start", "end")
    # Named by its slug: the name is the organisation's to show, the feed anyone's
    # who holds the link.
    return calendars.export(
        schedule.slug,
        (
            (
                f"{s.start:%Y%m%dT%H%M%SZ}-{s.responder_id}-{s.uid[:100]}@oncall",
                s.responder.user.email or s.responder.user.get_username(),
                s.start,
                s.end,
            )
            for s in shifts
        ),
        now,
    )


def export(request: HttpRequest, export_key: str) -> HttpResponse:
    """The ICS feed people subscribe to: the key in the URL is the credential, so it
    needs no session (calendar apps have none)."""
    schedule = OnCallSchedule.objects.filter(export_key=export_key).first()
    if schedule is None or len(export_key) < 20:
        raise Http404("No such calendar.")
    response = HttpResponse(export_body(schedule, timezone.now()), content_type="text/calendar")
    response["Content-Disposition"] = f'inline; filename="{schedule.slug}.ics"'
    response["Cache-Control"] = "private, max-age=300"
    return response
