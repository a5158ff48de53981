"""RPO and RTO objectives: SLOs measured from this database's job runs and alerts, with
no Prometheus.

- **RPO** (kind `rpo`, budgeted by time slices): a slice is good when, at its end, the
  last successful run of the designated backup monitor finished less than the RPO ago
  (24 h by default). Slices end on multiples of the slice length since the epoch, as
  Prometheus aligns a subquery's steps, and are counted from the monitor's creation on:
  before it there is nothing to measure. The current value is the age of the last
  good backup.
- **RTO** (kind `rto`, budgeted by occurrences): each restore is an event, good when it
  took at most the RTO (4 h by default): a successful run of the designated
  restore-drill monitor (its duration, counted when it finished), and an incident (a
  critical, non-test alert of the chosen services: resolved minus started, counted
  when it resolved). An incident still open counts once it has lasted longer than the
  RTO: a bad event *now*, in every window, for as long as it stays open, so its
  burn-rate page holds until it is over. The current value is the longest restore in
  the SLO window.

The counting is pure (timestamps in; per window, the (good, total) pair that
`queries.read_measurement` gives for Prometheus SLOs), so `maths.verdict` and
`alerts.reconcile` serve these SLOs unchanged: their burn-rate alerts come the same
way. `measure` reads the rows, within the window only.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate

from django.db.models import Q

from controlplane.slo.definition import BURN_WINDOWS
from controlplane.slo.maths import LONG

RPO = "rpo"
RTO = "rto"
KINDS = (RPO, RTO)
DEFAULT_TARGETS = {RPO: timedelta(hours=24), RTO: timedelta(hours=4)}
# The runbook their alerts link when the SLO names none (`slo-burn-rate` for the others).
RUNBOOK = "slo-objectives"
# What the evaluation row's current value is measured in.
UNIT = "s"
# The job monitor kind an RTO's restore drill must have.
RESTORE_KIND = "restore"

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_LONGEST_BURN = max(BURN_WINDOWS.values())


class NotMeasurable(Exception):
    """The objective has nothing to be measured from (its monitor was deleted)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Measurement:
    """Per window (`maths.LONG` and every BURN_WINDOWS name), (good, total); and the
    current value: the RPO's backup age, the RTO's longest restore (None: no backup
    yet, no restore in the window)."""

    counts: dict[str, tuple[float, float]]
    current: timedelta | None


@dataclass(frozen=True)
class Restore:
    """One RTO event: when it counts (`at`) and how long the restore took."""

    at: datetime
    took: timedelta
    # A drill that failed restored nothing: a bad event whatever it took.
    failed: bool = False


def _micros(at: datetime) -> int:
    return (at - EPOCH) // _MICROSECOND


def _starts(now: datetime, window_start: datetime) -> dict[str, datetime]:
    """Each window as the instant it starts after: (start, now]."""
    return {LONG: window_start, **{name: now - length for name, length in BURN_WINDOWS.items()}}


# --- RPO -----------------------------------------------------------------------------------


def slice_ends(after: datetime, until: datetime, length: timedelta) -> list[datetime]:
    """The ends of the slices in (after, until]: the multiples of `length` since the epoch."""
    step = length // _MICROSECOND
    if step <= 0:
        raise ValueError(f"a time slice must be longer than zero: {length}")
    first = (_micros(after) // step + 1) * step
    return [
        EPOCH + timedelta(microseconds=point) for point in range(first, _micros(until) + 1, step)
    ]


def last_per_slice(times: Iterable[datetime], length: timedelta) -> list[datetime]:
    """The last of the (ascending) `times` in each slice (end - length, end]: all a
    slice's verdict needs, so a monitor reporting every second costs one time per slice."""
    step = length // _MICROSECOND
    kept: list[datetime] = []
    slice_of_last = None
    for at in times:
        index = -(-_micros(at) // step)  # the slice ending at index * step holds `at`
        if kept and index == slice_of_last:
            kept[-1] = at
        else:
            kept.append(at)
            slice_of_last = index
    return kept


def good_slices(
    ends: Sequence[datetime], successes: Iterable[datetime], rpo: timedelta
) -> list[bool]:
    """For each slice end (ascending): did the last success at or before it finish less
    than `rpo` before it?"""
    ordered = sorted(successes)
    flags = []
    next_one, last = 0, None
    for end in ends:
        while next_one < len(ordered) and ordered[next_one] <= end:
            last = ordered[next_one]
            next_one += 1
        flags.append(last is not None and end - last < rpo)
    return flags


def rpo_counts(
    successes: Iterable[datetime],
    now: datetime,
    window_start: datetime,
    slice_length: timedelta,
    rpo: timedelta,
    since: datetime | None = None,
) -> dict[str, tuple[float, float]]:
    """(good slices, slices) of the SLO window (window_start, now] and of every burn
    window ending at `now`. `successes` are the finish times of the backup's successful
    runs, the last one before the earliest window included; slices ending at or before
    `since` (the monitor's creation) are not counted."""
    starts = _starts(now, window_start)
    if since is not None:
        starts = {name: max(start, since) for name, start in starts.items()}
    ends = slice_ends(min(starts.values()), now, slice_length)
    good = list(accumulate(good_slices(ends, successes, rpo), initial=0))
    counts = {}
    for name, start in starts.items():
        first = bisect_right(ends, start)
        counts[name] = (float(good[-1] - good[first]), float(len(ends) - first))
    return counts


def backup_age(successes: Iterable[datetime], now: datetime) -> timedelta | None:
    """How long ago the last success at or before `now` finished; None without one."""
    last = max((at for at in successes if at <= now), default=None)
    return None if last is None else now - last


# --- RTO -----------------------------------------------------------------------------------


def drill_restores(
    runs: Iterable[tuple[datetime | None, datetime | None, timedelta | None, str]],
) -> list[Restore]:
    """The restore drill's finished runs as (started, finished, duration, outcome): each
    took its duration (or finished - started), counted when it finished, whatever the
    monitor's own maximum said (a drill past the RTO times out and still restored, late).
    A failed drill is a bad restore; a success without a start or a duration (a lone
    success ping) has no restore time and is left out."""
    found = []
    for started, finished, duration, outcome in runs:
        if finished is None:
            continue
        took = duration if duration is not None else (finished - started if started else None)
        if outcome == "failure":
            found.append(Restore(finished, took or timedelta(0), failed=True))
        elif took is not None and took >= timedelta(0):
            found.append(Restore(finished, took))
    return found


def incident_restores(
    incidents: Iterable[tuple[datetime, datetime | None]], now: datetime, rto: timedelta
) -> list[Restore]:
    """Incidents as (started, resolved or None): a resolved one took resolved - started,
    counted when it resolved; one still open at `now` counts only once it has lasted
    longer than `rto`, as a restore of now - started happening now."""
    found = []
    for started, resolved in incidents:
        if started > now:
            continue
        if resolved is not None and resolved <= now:
            found.append(Restore(resolved, max(resolved - started, timedelta(0))))
        elif now - started > rto:
            found.append(Restore(now, now - started))
    return found


def rto_counts(
    restores: Iterable[Restore], now: datetime, window_start: datetime, rto: timedelta
) -> dict[str, tuple[float, float]]:
    """(restores within `rto`, restores) counted in (start, now] of the SLO window and
    of every burn window."""
    restores = list(restores)
    counts = {}
    for name, start in _starts(now, window_start).items():
        inside = [restore for restore in restores if start < restore.at <= now]
        good = sum(1 for restore in inside if restore.took <= rto and not restore.failed)
        counts[name] = (float(good), float(len(inside)))
    return counts


def longest_restore(
    restores: Iterable[Restore], now: datetime, window_start: datetime
) -> timedelta | None:
    """The longest restore counted in the SLO window; None without one."""
    return max(
        (restore.took for restore in restores if window_start < restore.at <= now), default=None
    )


# --- reading the rows ------------------------------------------------------------------------


def target_of(slo) -> timedelta:
    """The SLO's RPO or RTO, or the platform's default for its kind."""
    return slo.recovery_target or DEFAULT_TARGETS[slo.kind]


def measure(slo, now: datetime, window_start: datetime) -> Measurement:
    """Count an RPO or RTO SLO at `now` over its window (window_start, now] and the burn
    windows, from the rows of that stretch only: for an RPO two queries (the last
    success before it, then its successes, streamed and kept one per slice); for an RTO
    one for the drill's runs and one for the incidents. Raises NotMeasurable when the
    objective's monitor is gone."""
    from controlplane.alerting.models import Alert, Severity
    from controlplane.jobs.models import JobMonitor, JobRun

    earliest = min(window_start, now - _LONGEST_BURN)
    target = target_of(slo)
    if slo.kind == RPO:
        created = (
            JobMonitor.objects.filter(pk=slo.job_id).values_list("created_at", flat=True).first()
            if slo.job_id
            else None
        )
        if created is None:
            raise NotMeasurable("The RPO's backup monitor was deleted: choose another one.")
        runs = JobRun.objects.filter(
            monitor_id=slo.job_id, outcome=JobRun.Outcome.SUCCESS, finished_at__isnull=False
        )
        before = (
            runs.filter(finished_at__lte=earliest)
            .order_by("-finished_at")
            .values_list("finished_at", flat=True)
            .first()
        )
        recent = (
            runs.filter(finished_at__gt=earliest, finished_at__lte=now)
            .order_by("finished_at")
            .values_list("finished_at", flat=True)
        )
        successes = last_per_slice(
            [*([before] if before else []), *recent.iterator(chunk_size=2000)], slo.slice_length
        )
        return Measurement(
            rpo_counts(successes, now, window_start, slo.slice_length, target, since=created),
            backup_age(successes, now),
        )

    if slo.kind != RTO:
        raise ValueError(f"SLO {slo.slug} is no RPO or RTO objective")
    services = list(slo.incident_services or [])
    if not slo.job_id and not services:
        raise NotMeasurable(
            "The RTO has neither a restore-drill monitor (deleted?) nor services: choose one."
        )
    restores: list[Restore] = []
    if slo.job_id:
        restores += drill_restores(
            JobRun.objects.filter(
                monitor_id=slo.job_id,
                outcome__in=(
                    JobRun.Outcome.SUCCESS,
                    JobRun.Outcome.TIMEOUT,
                    JobRun.Outcome.TOO_FAST,
                    JobRun.Outcome.FAILURE,
                ),
                finished_at__gt=earliest,
                finished_at__lte=now,
            ).values_list("started_at", "finished_at", "duration", "outcome")
        )
    if services:
        incidents = (
            Alert.objects.filter(
                organization_id=slo.organization_id,
                service__slug__in=services,
                severity=Severity.CRITICAL,
                is_test=False,
                started_at__lte=now,
            )
            .filter(Q(resolved_at__isnull=True) | Q(resolved_at__gt=earliest))
            # The objectives' own burn-rate pages are not incidents: an RTO page open
            # past the RTO would otherwise keep itself open.
            .exclude(slo__kind__in=KINDS)
            .values_list("started_at", "resolved_at")
        )
        restores += incident_restores(incidents, now, target)
    return Measurement(
        rto_counts(restores, now, window_start, target),
        longest_restore(restores, now, window_start),
    )
