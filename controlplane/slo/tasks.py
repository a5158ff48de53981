"""Celery tasks of the SLO context; their schedule lives in django-celery-beat."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.utils import timezone

from controlplane.slo import evaluation

# SLOs a worker evaluates per task: each costs a query or two, so a batch stays short
# and a slow source holds up only its own.
BATCH_SIZE = 50


@shared_task(name="slo.evaluate_due_slos", ignore_result=True)
def evaluate_due_slos() -> int:
    """Beat's tick: queue the SLOs whose evaluation is due, in batches of one source
    each. Each batch is leased as it is queued, so the next tick does not queue it again;
    a lost message gives its SLOs back when the lease runs out. It never queries."""
    from controlplane.slo.models import SLO

    now = timezone.now()
    evaluation.ensure_evaluations()
    ids = evaluation.due_slo_ids(now)
    by_source: dict[int | None, list[int]] = {}
    for pk, source_id in (
        SLO.objects.filter(pk__in=ids).order_by("source_id", "pk").values_list("pk", "source_id")
    ):
        by_source.setdefault(source_id, []).append(pk)
    queued = 0
    for same_source in by_source.values():
        for i in range(0, len(same_source), BATCH_SIZE):
            batch = same_source[i : i + BATCH_SIZE]
            token, taken = evaluation.claim(batch, now, due_only=True)
            if taken:
                evaluate_slos.delay(batch, token=token)
                queued += taken
    return queued


@shared_task(name="slo.evaluate_slos", ignore_result=True, acks_late=True)
def evaluate_slos(slo_ids: list[int], at: str | None = None, token: str | None = None) -> int:
    """Evaluate the SLOs of beat's lease `token` (or those this worker can claim);
    `at` (ISO 8601) evaluates at a fixed time."""
    when = datetime.fromisoformat(at) if at else None
    return len(evaluation.evaluate_claimed(slo_ids, at=when, token=token))
