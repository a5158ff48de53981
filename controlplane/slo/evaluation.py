"""Evaluating SLOs: ask the source, decide the verdict, keep it, open and resolve alerts.

The pure parts are `queries` (what is asked), `maths` (the verdict), `windows` (the
window's bounds) and `history` (which snapshots are kept); this module is the edge. It
writes an SLO's `SLOEvaluation`, its snapshots and its alerts, never the SLO a manager
edits.

Each SLO costs one query; with SLO_FAST_PATH on, a second one asks whether the
recording rules cover the window (once an hour once they do, every evaluation while they
do not). Queries are made outside any transaction; each SLO's outcome is then
written in a transaction of its own, for the SLOs still ours once their evaluation row
is locked: an SLO disabled, deleted or taken by another worker meanwhile is left alone.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from controlplane.catalog import sources
from controlplane.catalog.actors import Actor
from controlplane.promql.client import PrometheusClient, SourceError, SourceUnavailable
from controlplane.slo import alerts, history, maths, metrics, objectives, queries, windows
from controlplane.slo.models import SLO, SLOEvaluation, SLOSnapshot
from observability import context, tracing

logger = logging.getLogger(__name__)

EVALUATOR = Actor.system("slo.evaluate")
# How long beat's queueing or a worker's hold on an SLO lasts before another may take
# it (a lost task or a killed worker must not keep its SLOs).
CLAIM_LEASE = timedelta(minutes=2)


@dataclass(frozen=True)
class Outcome:
    slo_id: int
    result: str  # ok | source_error | error | retired
    status: str
    opened: int = 0
    resolved: int = 0


@dataclass
class _Measured:
    slo: SLO
    verdict: maths.Verdict
    error: str
    trace_id: str
    fast_path: bool
    window: tuple[datetime, datetime]
    result: str
    # RPO and RTO only (objectives.py): the backup age or the longest restore, in seconds.
    current_value: float | None = None


def interval() -> timedelta:
    return timedelta(seconds=settings.SLO_EVALUATION_SECONDS)


def ensure_evaluations(slo_ids: Iterable[int] | None = None) -> int:
    """Create the evaluation row of every SLO that lacks one (bulk_create, fixtures)."""
    missing = SLO.objects.filter(evaluation__isnull=True)
    if slo_ids is not None:
        missing = missing.filter(pk__in=list(slo_ids))
    ids = list(missing.values_list("pk", flat=True))
    if ids:
        SLOEvaluation.objects.bulk_create(
            [SLOEvaluation(slo_id=pk) for pk in ids], ignore_conflicts=True
        )
    return len(ids)


def _free(now: datetime) -> Q:
    return Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)


def due_slo_ids(now: datetime, limit: int = 10_000) -> list[int]:
    """Enabled SLOs whose evaluation is due and that nobody has queued or holds."""
    return list(
        SLOEvaluation.objects.filter(slo__enabled=True, due_at__lte=now)
        .filter(_free(now))
        .order_by("due_at")
        .values_list("slo_id", flat=True)[:limit]
    )


def claim(slo_ids: Iterable[int], now: datetime, due_only: bool = False) -> tuple[str, int]:
    """Take a lease on the SLOs no one else holds: (token, how many it took)."""
    token = uuid.uuid4().hex
    rows = SLOEvaluation.objects.filter(slo_id__in=list(slo_ids), slo__enabled=True).filter(
        _free(now)
    )
    if due_only:
        rows = rows.filter(due_at__lte=now)
    taken = (
        SLOEvaluation.objects.filter(pk__in=rows.values("pk"))
        .filter(_free(now))
        .update(claimed_until=now + CLAIM_LEASE, claim_token=token)
    )
    return token, taken


def evaluate_claimed(
    slo_ids: Iterable[int], at: datetime | None = None, token: str | None = None
) -> list[Outcome]:
    """Evaluate the SLOs of beat's lease `token` (or those this worker can claim).
    `at` evaluates at a fixed time (tests, backfills) and leaves the schedule alone."""
    slo_ids = list(slo_ids)
    if token is None:
        ensure_evaluations(slo_ids)
        token, _ = claim(slo_ids, timezone.now())
    SLOEvaluation.objects.filter(claim_token=token).update(
        claimed_until=timezone.now() + CLAIM_LEASE
    )
    slos = list(
        SLO.objects.filter(pk__in=slo_ids, evaluation__claim_token=token)
        .select_related(
            "evaluation",
            "source",
            "service",
            "organization",
            "runbook",
            "escalation_policy",
            "job",
        )
        .order_by("pk")
    )
    try:
        return evaluate(slos, at or timezone.now(), token=token, scheduled=at is None)
    finally:
        SLOEvaluation.objects.filter(claim_token=token).update(claimed_until=None, claim_token="")


def evaluate(
    slos: list[SLO], now: datetime, token: str | None = None, scheduled: bool = False
) -> list[Outcome]:
    """Evaluate the SLOs at `now` and write each outcome."""
    clients: dict[int, PrometheusClient] = {}
    down: dict[int, SourceError] = {}
    answered: set[int] = set()
    outcomes = []
    renewed = time.monotonic()
    for slo in slos:
        if token is not None and time.monotonic() - renewed > CLAIM_LEASE.total_seconds() / 4:
            # A batch on a slow source outlives a lease: keep it ours to the end.
            SLOEvaluation.objects.filter(claim_token=token).update(
                claimed_until=timezone.now() + CLAIM_LEASE
            )
            renewed = time.monotonic()
        began = time.perf_counter()
        with (
            context.scope(organization_id=str(slo.organization_id)),
            tracing.span(
                "slo.evaluate",
                {"slo.slug": slo.slug, "app.organization.id": str(slo.organization_id)},
            ) as span,
        ):
            measured = _measure(slo, now, clients, down)
            span.set_attribute("slo.status", measured.verdict.status)
            span.set_attribute("slo.result", measured.result)
            span.set_attribute("slo.fast_path", measured.fast_path)
            # Inside the span: the alerts it opens carry the evaluation's trace id.
            try:
                outcome = _write(measured, now, token, scheduled)
            except Exception:  # one SLO's bad row must not stall its whole batch each tick
                logger.exception("the evaluation of SLO %s could not be written", slo.slug)
                if scheduled:
                    SLOEvaluation.objects.filter(slo_id=slo.pk).update(
                        due_at=timezone.now() + interval()
                    )
                outcome = Outcome(slo.pk, "error", measured.verdict.status)
        if slo.source_id and measured.result == "ok":
            answered.add(slo.source_id)
        metrics.slo_evaluation_duration.observe(time.perf_counter() - began)
        metrics.slo_evaluations.labels(result=outcome.result).inc()
        outcomes.append(outcome)
    health: dict[int, SourceError | None] = {pk: None for pk in answered - down.keys()}
    health.update(down)
    sources.record_health(health, timezone.now())
    return outcomes


def _measure(
    slo: SLO, now: datetime, clients: dict[int, PrometheusClient], down: dict[int, SourceError]
) -> _Measured:
    definition = slo.definition()
    start, end = windows.window_bounds(definition.window, now)
    length = windows.window_length(definition.window, now)
    # Prometheus ranges are whole seconds (milliseconds would do, but a calendar window
    # measured to the second is the period to date as exactly as any scrape can say).
    covered = timedelta(seconds=max(1, math.floor((end - start).total_seconds())))
    trace_id = tracing.current_trace_id() or ""
    organization = slo.organization.slug
    counts: dict[str, tuple[float, float]] = {}
    error, result, fast = "", "ok", False
    current: float | None = None
    try:
        if slo.kind in objectives.KINDS:
            # RPO and RTO are counted from this database's job runs and alerts: no source.
            measurement = objectives.measure(slo, now, start)
            counts = measurement.counts
            if measurement.current is not None:
                current = measurement.current.total_seconds()
        else:
            if slo.source_id is None:
                raise SourceUnavailable("the SLO has no source")
            if slo.source_id in down:
                raise down[slo.source_id]
            client = clients.get(slo.source_id)
            if client is None:
                client = clients[slo.source_id] = sources.client_for(slo.source)
            if settings.SLO_FAST_PATH and definition.budgeting == "occurrences":
                fast = _fast_path(slo, definition, covered, organization, client, now)
            samples = client.query(
                queries.measurement_query(
                    definition, covered, fast_path=fast, organization=organization
                ),
                at=now,
            )
            counts = queries.read_measurement(samples)
    except objectives.NotMeasurable as failure:
        error, result = failure.message, "source_error"
    except SourceError as failure:
        error, result = failure.message, "source_error"
        if slo.source_id and failure.kind != "bad_query":
            down[slo.source_id] = failure
    except Exception as failure:  # a bug of ours: logged, the SLO shows it, others go on
        logger.exception("evaluating SLO %s failed", slo.slug)
        error, result = f"internal error: {failure}", "error"
    # A NaN or an infinity (a counter reset mid-range, a histogram gone wrong) is not a
    # count: that window is as good as not measured.
    counts = {window: pair for window, pair in counts.items() if all(map(math.isfinite, pair))}
    verdict = maths.verdict(
        definition.objective, length, counts, definition.min_events, _slices(definition)
    )
    if result == "ok" and verdict.status == "no_data":
        error = (
            "The source has no series for the SLO window: check that the total selector "
            "(or the histogram, or the expression) names series the source holds."
        )
    return _Measured(slo, verdict, error, trace_id, fast, (start, end), result, current)


def _fast_path(slo, definition, covered, organization, client, now: datetime) -> bool:
    """Whether the recordings cover the window. Once they did, asked again only at the
    first evaluation of each hour (recordings a Prometheus lost show by then), so the
    fast path costs one query per evaluation; an edit of the SLO asks again at once."""
    row = getattr(slo, "evaluation", None)
    if (
        row is not None
        and row.fast_path
        and row.evaluated_at is not None
        and _hour(row.evaluated_at) == _hour(now)
    ):
        return True
    coverage = client.query(queries.coverage_query(definition, covered, organization), at=now)
    return queries.covers(coverage, covered)


def _write(measured: _Measured, now: datetime, token: str | None, scheduled: bool) -> Outcome:
    slo, verdict = measured.slo, measured.verdict
    opened = resolved = 0
    with transaction.atomic():
        rows = SLOEvaluation.objects.select_for_update(of=("self",)).filter(
            slo_id=slo.pk, slo__enabled=True
        )
        if token is not None:
            rows = rows.filter(claim_token=token)
        row = rows.first()
        if row is None:
            return Outcome(slo.pk, "retired", verdict.status)
        # An edit saved since this SLO was read (editing.save locks the row above first):
        # what was measured is the old definition's, and the edit made the SLO due again.
        current = SLO.objects.filter(pk=slo.pk).values_list("updated_at", flat=True).first()
        if current != slo.updated_at:
            return Outcome(slo.pk, "retired", verdict.status)
        measured_anything = verdict.status != "no_data"
        previous = row.evaluated_at
        row.status = verdict.status
        row.last_error = measured.error
        row.evaluated_at = now
        row.trace_id = measured.trace_id
        row.fast_path = measured.fast_path
        row.window_start, row.window_end = measured.window
        if measured_anything:
            row.sli = verdict.sli
            row.budget_remaining = verdict.budget_remaining
            row.burn_rates = dict(verdict.burn_rates)
            row.events = verdict.events
            row.time_to_exhaustion = verdict.time_to_exhaustion
            row.current_value = measured.current_value
            row.current_unit = objectives.UNIT if slo.kind in objectives.KINDS else ""
        if scheduled:
            row.due_at = timezone.now() + interval()
        row.save()
        SLOSnapshot.objects.create(
            slo=slo,
            at=now,
            status=verdict.status,
            sli=verdict.sli,
            budget_remaining=verdict.budget_remaining,
            burn_rates=dict(verdict.burn_rates) if measured_anything else {},
            events=verdict.events,
            current_value=measured.current_value,
            trace_id=measured.trace_id,
        )
        if measured_anything:
            try:
                with transaction.atomic():  # a savepoint: the measurement is kept regardless
                    definition = slo.definition()
                    opened, resolved = alerts.reconcile(
                        slo,
                        maths.tiers(
                            windows.window_length(definition.window, now), _slices(definition)
                        ),
                        verdict.holding,
                        dict(verdict.burn_rates),
                        EVALUATOR,
                    )
            except Exception as failure:
                logger.exception("the alerts of SLO %s could not be updated", slo.slug)
                SLOEvaluation.objects.filter(pk=row.pk).update(
                    last_error=f"internal error updating alerts: {failure}"
                )
        if previous is None or _hour(previous) != _hour(now):
            _prune(slo, now)
    return Outcome(slo.pk, measured.result, verdict.status, opened, resolved)


def _slices(definition) -> timedelta | None:
    return definition.slice_length if definition.budgeting == "timeslices" else None


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _prune(slo: SLO, now: datetime) -> int:
    """Thin the SLO's history (history.py): once an hour per SLO is enough, as the
    thinnest band it keeps whole is the last 48 hours."""
    rows = list(SLOSnapshot.objects.filter(slo=slo).order_by("at").values_list("pk", "at"))
    doomed = [rows[index][0] for index in history.to_prune([at for _, at in rows], now)]
    if doomed:
        SLOSnapshot.objects.filter(pk__in=doomed).delete()
    return len(doomed)
