"""`calendar.synchronize`: read each due schedule's calendars and replace its shifts.

Split as runbooks/sync.py is: `decide()` is pure (parse, expand, name, overlay: no
I/O), `apply()` writes its plan in one transaction. Around them, `synchronize()`
fetches the feeds and runs in a `calendar.synchronize` span.

A broken feed never empties a schedule: on any failure (unreachable, an HTTP error,
an HTML page, garbage, over the size limit, an unknown time zone...) the plan keeps
the last good shifts, and `apply()` records the error, its time and one more failure
in a row. Feed validators and bodies are stored only with a success, so a later 304
always means "the body that made the shifts you have".

Claiming: due schedules are taken with `skip_locked` and their `due_at` moved a lease
ahead in the same statement's transaction, so two workers never read the same
schedule at once, and a worker that dies mid-run leaves it due again after the lease.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from controlplane.catalog.models import Membership
from controlplane.oncall import calendars, feeds, metrics, rota
from controlplane.oncall.models import (
    MOST_ICS_BYTES,
    OnCallSchedule,
    Responder,
    ScheduleSync,
    Shift,
)
from observability import context, tracing

logger = logging.getLogger(__name__)

# The shifts kept: a week back (the API's ?at= and the pages look back a little) and
# six weeks ahead (the page shows two; the export lets people plan further).
PAST = timedelta(days=7)
HORIZON = timedelta(weeks=6)
# Schedules taken per run, and how long a taken one is the taker's.
BATCH_SIZE = 20
LEASE = timedelta(minutes=2)
LONGEST_ERROR = 500
# Names of unknown people kept for the pages: the first ones say what to fix.
MOST_UNKNOWN = 20


# --- deciding ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Feed:
    """One calendar as read: its body (new, or the stored one after a 304), or the
    failure that stopped reading it."""

    body: bytes = b""
    error: str = ""
    etag: str = ""
    last_modified: str = ""


@dataclass(frozen=True)
class Plan:
    """Replace the shifts (`shifts` is not None), or keep them and record `error`."""

    shifts: tuple[rota.Shift, ...] | None
    unknown: tuple[str, ...] = ()
    error: str = ""


def decide(
    main: Feed,
    override: Feed | None,
    zone: ZoneInfo,
    names: dict[str, int],
    now: datetime,
) -> Plan:
    """The plan for one schedule from its feeds as read; pure."""
    start, end = now - PAST, now + HORIZON
    read: list[tuple[list[rota.Shift], list[rota.Unknown]]] = []
    for label, feed in (("calendar", main), ("override calendar", override)):
        if feed is None:
            read.append(([], []))
            continue
        if feed.error:
            return Plan(None, error=f"The {label} {feed.error}.")
        try:
            found = calendars.read(feed.body, zone, start, end, MOST_ICS_BYTES)
        except calendars.CalendarError as error:
            return Plan(None, error=f"The {label} {error.message}.")
        read.append(rota.assign(found, names, override=label != "calendar"))
    (main_shifts, main_unknown), (override_shifts, override_unknown) = read
    unknown = [*main_unknown, *override_unknown]
    if main_unknown and not main_shifts:
        # Every event names nobody we know (renamed summaries, people gone): taken as it
        # reads, the schedule would be emptied. A failure keeps the last good shifts and
        # says so, and calendar.queue fires if it lasts.
        return Plan(
            None,
            unknown=tuple(_unknown_text(u) for u in main_unknown[:MOST_UNKNOWN]),
            error="The calendar's events name nobody of the organisation "
            f"({_unknown_text(main_unknown[0])}): the last good shifts are kept.",
        )
    return Plan(
        shifts=tuple(rota.overlay(main_shifts, override_shifts)),
        unknown=tuple(_unknown_text(u) for u in unknown[:MOST_UNKNOWN]),
    )


# What a synchronisation reads: an edit of any of these mid-way voids what it read.
READ_FIELDS = ("ics_url", "ics_text", "override_ics_url", "override_ics_text", "time_zone")


def _edited_since(schedule: OnCallSchedule) -> bool:
    now_stored = OnCallSchedule.objects.filter(pk=schedule.pk).values_list(*READ_FIELDS).first()
    return now_stored != tuple(getattr(schedule, name) for name in READ_FIELDS)


def _unknown_text(unknown: rota.Unknown) -> str:
    if not unknown.name:
        return f"An event names nobody ({unknown})."
    return f"{unknown} is no member of the organisation."


# --- reading the feeds --------------------------------------------------------------------


def read_feed(url: str, text: str, etag: str, last_modified: str, stored: bytes) -> Feed:
    """A calendar from its URL (conditionally, when a body is stored) or its text."""
    if not url:
        return Feed(body=text.encode())
    if not stored:
        etag = last_modified = ""
    try:
        fetched = feeds.fetch(url, etag, last_modified)
    except (feeds.FeedError, calendars.CalendarError) as error:
        return Feed(error=error.message)
    body = stored if fetched.unchanged else fetched.body
    return Feed(body=body or b"", etag=fetched.etag, last_modified=fetched.last_modified)


# --- applying -------------------------------------------------------------------------------


def apply(
    schedule: OnCallSchedule,
    plan: Plan,
    main: Feed,
    override: Feed | None,
    now: datetime,
    trace_id: str = "",
) -> ScheduleSync:
    """Write the plan: the shifts replaced and the success recorded, or the failure
    recorded and the shifts left alone; one transaction either way."""
    with transaction.atomic():
        state = ScheduleSync.objects.select_for_update().get(schedule=schedule)
        state.last_attempt_at = now
        if _edited_since(schedule):
            # Its calendars were edited while these were read (the edit made it due and
            # forgot the validators): what was read is another calendar's. Nothing of
            # it is kept; the next run reads the new one at once.
            state.save(update_fields=["last_attempt_at"])
            return state
        state.due_at = now + schedule.sync_interval
        # A failure keeps the trace of the first failure in a row: the calendar.queue
        # alert names it as a label, which must hold still while the feed stays down.
        if plan.shifts is not None or not state.consecutive_failures:
            state.trace_id = trace_id or state.trace_id
        fields = ["last_attempt_at", "due_at", "trace_id"]
        if plan.shifts is None:
            state.last_error = plan.error[:LONGEST_ERROR]
            state.last_error_at = now
            state.consecutive_failures += 1
            fields += ["last_error", "last_error_at", "consecutive_failures"]
        else:
            _replace_shifts(schedule, plan.shifts)
            state.last_synced_at = now
            state.last_error = ""
            state.consecutive_failures = 0
            state.unknown_names = list(plan.unknown)
            state.main_etag, state.main_last_modified = main.etag, main.last_modified
            state.main_body = main.body if schedule.ics_url else b""
            fields += [
                "last_synced_at",
                "last_error",
                "consecutive_failures",
                "unknown_names",
                "main_etag",
                "main_last_modified",
                "main_body",
            ]
            feed = override or Feed()
            state.override_etag, state.override_last_modified = feed.etag, feed.last_modified
            state.override_body = feed.body if schedule.override_ics_url else b""
            fields += ["override_etag", "override_last_modified", "override_body"]
        state.save(update_fields=fields)
    return state


def _replace_shifts(schedule: OnCallSchedule, shifts: Sequence[rota.Shift]) -> None:
    responders = _responders(schedule.organization_id, {s.responder for s in shifts})
    schedule.shifts.all().delete()
    Shift.objects.bulk_create(
        Shift(
            schedule=schedule,
            responder_id=responders[s.responder],
            start=s.start,
            end=s.end,
            uid=s.uid[:300],
            override=s.override,
        )
        for s in shifts
    )


def _responders(organization_id: int, users: Iterable[int]) -> dict[int, int]:
    """user id -> Responder id, the missing profiles made (one by one, and recorded)."""
    wanted = set(users)
    found = dict(
        Responder.objects.filter(organization_id=organization_id, user_id__in=wanted).values_list(
            "user_id", "pk"
        )
    )
    missing = wanted - set(found)
    if missing:
        # One by one, so the audit trail records each profile made (a bulk insert that
        # skips conflicts cannot say which rows it wrote); one made meanwhile is kept.
        for user in sorted(missing):
            try:
                with transaction.atomic():
                    Responder.objects.create(organization_id=organization_id, user_id=user)
            except IntegrityError:
                pass
        found = dict(
            Responder.objects.filter(
                organization_id=organization_id, user_id__in=wanted
            ).values_list("user_id", "pk")
        )
    return found


def members(organization_id: int) -> dict[str, int]:
    """The organisation's members by username and email (rota.directory)."""
    rows = Membership.objects.filter(organization_id=organization_id).values_list(
        "user_id", "user__username", "user__email"
    )
    return rota.directory(list(rows))


# --- one schedule, and the beat run ---------------------------------------------------------


@dataclass
class Report:
    synchronized: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def synchronize(schedule: OnCallSchedule, now: datetime | None = None) -> ScheduleSync:
    """Read one schedule's calendars and apply the outcome, in a span. A feed that makes
    the reading itself raise is recorded as a failure like any other: left unrecorded,
    the schedule would look merely pending and calendar.queue would never fire."""
    now = now or timezone.now()
    state = ScheduleSync.objects.get_or_create(schedule=schedule)[0]
    attributes = {
        "oncall.schedule": schedule.slug,
        "app.organization.id": str(schedule.organization_id),
        "oncall.organization": schedule.organization.slug,
    }
    with (
        context.scope(organization_id=str(schedule.organization_id)),
        tracing.span("calendar.synchronize", attributes) as span,
    ):
        main = read_feed(
            schedule.ics_url,
            schedule.ics_text,
            state.main_etag,
            state.main_last_modified,
            bytes(state.main_body or b""),
        )
        override = None
        if schedule.override_ics_url or schedule.override_ics_text.strip():
            override = read_feed(
                schedule.override_ics_url,
                schedule.override_ics_text,
                state.override_etag,
                state.override_last_modified,
                bytes(state.override_body or b""),
            )
        try:
            plan = decide(main, override, schedule.zone, members(schedule.organization_id), now)
        except Exception as error:
            logger.exception("reading the calendars of schedule %s raised", schedule.slug)
            plan = Plan(None, error=f"The calendar could not be read ({type(error).__name__}).")
        outcome = "failed" if plan.shifts is None else "ok"
        span.set_attribute("oncall.outcome", outcome)
        if plan.shifts is not None:
            span.set_attribute("oncall.shifts", len(plan.shifts))
        else:
            span.set_attribute("oncall.error", loggable_error(plan))
        state = apply(schedule, plan, main, override, now, tracing.current_trace_id() or "")
    metrics.syncs.labels(outcome=outcome).inc()
    if plan.shifts is None:
        logger.warning("calendar of schedule %s: %s", schedule.slug, loggable_error(plan))
    return state


def loggable_error(plan: Plan) -> str:
    """The plan's error for logs and spans: a calendar's names are people's, so these say
    how many it named unknown and the schedule's page (a manager's view) says who."""
    if plan.shifts is None and plan.unknown:
        return (
            "the calendar's events name nobody of the organisation: the last good shifts "
            "are kept (the schedule's page says whom they name)"
        )
    return plan.error


def mark_due(schedule: OnCallSchedule, now: datetime | None = None) -> None:
    """Synchronise the schedule at the next run; its feeds' validators are forgotten,
    since its URLs may have changed (a 304 of the new URL would mean nothing)."""
    ScheduleSync.objects.update_or_create(
        schedule=schedule,
        defaults={
            "due_at": now or timezone.now(),
            "main_etag": "",
            "main_last_modified": "",
            "override_etag": "",
            "override_last_modified": "",
        },
    )


def nudge() -> None:
    """Ask a worker for a run right after this transaction commits. A latency
    convenience ("synchronise now"): beat's run finds the due schedules anyway."""
    transaction.on_commit(_nudge)


def _nudge() -> None:
    from controlplane.oncall.tasks import synchronize_due

    try:
        synchronize_due.apply_async(expires=60)
    except Exception:  # the broker is down: beat's run will synchronise
        logger.warning("could not queue a calendar synchronisation", exc_info=True)


def claim(now: datetime, limit: int = BATCH_SIZE) -> list[OnCallSchedule]:
    """Take up to `limit` due schedules for LEASE (module doc)."""
    missing = OnCallSchedule.objects.filter(sync__isnull=True).values_list("pk", flat=True)
    ScheduleSync.objects.bulk_create(
        [ScheduleSync(schedule_id=pk, due_at=now) for pk in missing], ignore_conflicts=True
    )
    with transaction.atomic():
        taken = list(
            ScheduleSync.objects.select_for_update(skip_locked=True)
            .filter(Q(due_at__lte=now) | Q(due_at__isnull=True))
            .order_by("due_at")
            .values_list("pk", flat=True)[:limit]
        )
        ScheduleSync.objects.filter(pk__in=taken).update(due_at=now + LEASE)
    return list(
        OnCallSchedule.objects.select_related("organization").filter(pk__in=taken).order_by("pk")
    )


def run(now: datetime | None = None) -> Report:
    """Beat's run: synchronise what is due, then set the metrics."""
    report = Report()
    for schedule in claim(now or timezone.now()):
        try:
            state = synchronize(schedule)
        except Exception:
            # One schedule's bug must not stop the others; it is due again after LEASE.
            logger.exception("synchronising schedule %s failed", schedule.slug)
            report.failed.append(schedule.slug)
            continue
        (report.failed if state.failing else report.synchronized).append(schedule.slug)
    refresh_metrics(timezone.now())
    return report


# --- the figures: the metrics and the calendar.queue signal (queue.py) ----------------


@dataclass(frozen=True)
class Figures:
    """The state of synchronisation across schedules."""

    backlog: int
    delays: dict[str, float]
    # The schedules counted in the backlog: the calendar.queue signal names them.
    overdue: frozenset[str] = frozenset()

    @property
    def oldest(self) -> float:
        return max(self.delays.values(), default=0.0)


# A schedule counts as backlog once due for longer than this: a run every 30 s takes it.
BACKLOG_GRACE = timedelta(minutes=1)


def figures(
    rows: Iterable[tuple[str, datetime, datetime | None, datetime | None, int]], now: datetime
) -> Figures:
    """From (label, created, last synced, due, failures in a row) of each schedule."""
    overdue: set[str] = set()
    delays: dict[str, float] = {}
    for label, created, synced, due, failures in rows:
        delays[label] = max((now - (synced or created)).total_seconds(), 0.0)
        if failures or due is None or due + BACKLOG_GRACE <= now:
            overdue.add(label)
    return Figures(len(overdue), delays, frozenset(overdue))


def current_figures(now: datetime) -> Figures:
    rows = OnCallSchedule.objects.values_list(
        "organization__slug",
        "slug",
        "created_at",
        "sync__last_synced_at",
        "sync__due_at",
        "sync__consecutive_failures",
    )
    return figures(
        (
            (f"{org}/{slug}", created, synced, due, failures or 0)
            for org, slug, created, synced, due, failures in rows
        ),
        now,
    )


def refresh_metrics(now: datetime) -> Figures:
    found = current_figures(now)
    metrics.sync_delay.clear()
    for label, delay in found.delays.items():
        metrics.sync_delay.labels(schedule=label).set(delay)
    metrics.sync_backlog.set(found.backlog)
    return found
