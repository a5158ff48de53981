"""The `calendar.queue` internal signal: synchronisation falling behind, without Prometheus.

It reads the figures the metrics show (synchronize.figures), for one organisation, and
returns only the series that breach, so the built-in rule `calendar.queue` compares
nothing itself (no comparison, no threshold: every series returned is breaching) and
one rule holds both conditions, each with its own limit:

- `{reason="backlog"}`, the backlog (schedules due for over a minute, failing ones
  included), when above CALENDAR_QUEUE_MOST_BACKLOG;
- `{reason="late", schedule, trace_id}`, a schedule in the backlog whose last successful
  synchronisation is older than CALENDAR_QUEUE_LONGEST_DELAY_SECONDS, valued at that
  age. Only a schedule in the backlog: a daily schedule read 20 hours ago is on time.
  `trace_id` is the trace of its first failure in a row (or its last success), which
  holds still while the feed stays down, so the alert carries the synchronisation's
  trace as well as its own evaluation's.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from controlplane.alerting.internal_signals import Series, register
from controlplane.oncall import synchronize
from controlplane.oncall.models import OnCallSchedule


@dataclass(frozen=True)
class Limits:
    most_backlog: int
    longest_delay: float


def breaches(figures: synchronize.Figures, traces: dict[str, str], limits: Limits) -> list[Series]:
    """The series of `calendar.queue` from one organisation's figures, labelled by
    schedule slug; pure."""
    found = []
    if figures.backlog > limits.most_backlog:
        found.append(Series({"reason": "backlog"}, float(figures.backlog)))
    for slug in sorted(figures.overdue):
        delay = figures.delays[slug]
        if delay > limits.longest_delay:
            labels = {"reason": "late", "schedule": slug, "trace_id": traces.get(slug, "")}
            found.append(Series(labels, delay))
    return found


def limits() -> Limits:
    return Limits(
        settings.CALENDAR_QUEUE_MOST_BACKLOG, settings.CALENDAR_QUEUE_LONGEST_DELAY_SECONDS
    )


@register(
    "calendar.queue",
    "On-call calendars falling behind: the backlog above its limit, and each overdue "
    "schedule not synchronised for longer than its limit (docs/oncall.md).",
)
def calendar_queue(organization_id: int) -> list[Series]:
    now = timezone.now()
    rows = OnCallSchedule.objects.filter(organization_id=organization_id).values_list(
        "slug",
        "created_at",
        "sync__last_synced_at",
        "sync__due_at",
        "sync__consecutive_failures",
        "sync__trace_id",
    )
    traces = {slug: trace or "" for slug, *_, trace in rows}
    figures = synchronize.figures(
        (
            (slug, created, synced, due, failures or 0)
            for slug, created, synced, due, failures, _ in rows
        ),
        now,
    )
    return breaches(figures, traces, limits())
