"""Celery tasks of the alerting engine; their schedules live in django-celery-beat."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.utils import timezone

from controlplane.alerting import evaluation, lifecycle, outbox

# Rules a worker evaluates per task: large enough to share queries, small enough
# that a slow source holds up only its own batch.
BATCH_SIZE = 100


@shared_task(name="alerting.evaluate_due_rules", ignore_result=True)
def evaluate_due_rules() -> int:
    """Beat's tick (twice a second): queue the rules whose slot has come, grouped so
    shared queries stay together. Each batch is leased as it is queued, so a rule
    waiting in the queue is not queued again by the next tick; a lost message
    gives its rules back when the lease runs out. It never talks to a source."""
    now = timezone.now()
    evaluation.ensure_evaluations()
    ids = evaluation.due_rule_ids(now)
    queued = 0
    for batch in batches(ids):
        token, taken = evaluation.claim_counted(batch, now, due_only=True)
        if taken:  # none: a tick running beside this one queued them first
            evaluate_rules.delay(batch, token=token)
            queued += taken
    return queued


def batches(rule_ids: list[int]) -> list[list[int]]:
    """Batches of one source each (a slow source holds up only its own batches),
    ordered by expression so that rules sharing a query land together."""
    from controlplane.alerting.models import AlertRule

    by_source: dict[int | None, list[int]] = {}
    for pk, source_id in (
        AlertRule.objects.filter(pk__in=rule_ids)
        .order_by("source_id", "expr", "pk")
        .values_list("pk", "source_id")
    ):
        by_source.setdefault(source_id, []).append(pk)
    return [
        ids[i : i + BATCH_SIZE]
        for ids in by_source.values()
        for i in range(0, len(ids), BATCH_SIZE)
    ]


@shared_task(name="alerting.evaluate_rules", ignore_result=True, acks_late=True)
def evaluate_rules(rule_ids: list[int], at: str | None = None, token: str | None = None) -> int:
    """Evaluate the rules of beat's lease `token` (or those this worker can claim);
    `at` (ISO 8601) replays a fixed time."""
    when = datetime.fromisoformat(at) if at else None
    return len(evaluation.evaluate_claimed(rule_ids, at=when, due_only=when is None, token=token))


@shared_task(name="alerting.dispatch_alert_events", ignore_result=True, acks_late=True)
def dispatch_alert_events() -> int:
    """Hand pending timeline events to their consumers (beat's tick, and a nudge
    after each change): see `alerting.outbox`."""
    return outbox.drain()


@shared_task(name="alerting.release_ended_silences", ignore_result=True)
def release_ended_silences() -> int:
    return lifecycle.release_ended_silences()
