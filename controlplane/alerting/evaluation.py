"""Evaluating rules: query, compare, step the state machine, open and resolve alerts.

The pure parts live in `states` (the state machine), `templates` (annotations) and
`prometheus` (parsing answers); this module is the edge that reads the database
and the sources and writes the outcome.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from controlplane.alerting import internal_signals, lifecycle, states, templates
from controlplane.alerting.models import LONGEST_INTERVAL, Alert, AlertRule
from controlplane.alerting.prometheus import (
    BadQuery,
    PrometheusClient,
    QueryFailed,
    SourceError,
    SourceTimeout,
    SourceUnavailable,
)
from controlplane.catalog.models import MetricSource
from observability import context, metrics, tracing

logger = logging.getLogger(__name__)

# How long a worker may hold a rule before another may take it over (a worker
# killed mid-evaluation must not keep its rules forever).
CLAIM_LEASE = timedelta(minutes=2)
HEALTH_WRITE_INTERVAL = timedelta(seconds=30)


@dataclass(frozen=True)
class Outcome:
    rule_id: int
    result: str  # ok | source_error | bad_query | error
    query_seconds: float
    opened: int = 0
    resolved: int = 0


def client_for(source: MetricSource, session: requests.Session | None = None) -> PrometheusClient:
    headers = {"Authorization": source.auth_header} if source.auth_header else None
    if session is None:
        session = requests.Session()
        # Sources are reached directly: proxy variables of the worker's environment
        # do not apply (and reading them costs a scan of the environment per query).
        session.trust_env = False
    return PrometheusClient(source.url, timeout=source.timeout, headers=headers, session=session)


def claim(rule_ids: Iterable[int], now: datetime, due_only: bool = False) -> str:
    """Take a lease on the rules no other worker holds; returns the lease's token.

    With due_only, rules evaluated since they were queued are left alone, so a
    rule queued twice by beat under load is evaluated once.
    """
    token = uuid.uuid4().hex
    rules = AlertRule.objects.filter(pk__in=list(rule_ids), enabled=True).filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )
    if due_only:
        rules = rules.filter(next_evaluation_at__lte=now)
    rules.update(claimed_until=now + CLAIM_LEASE, claim_token=token)
    return token


class Lease:
    """Keeps a claim alive while a long batch (a slow source) is evaluated."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.renewed = time.monotonic()

    def renew(self) -> None:
        if time.monotonic() - self.renewed < CLAIM_LEASE.total_seconds() / 4:
            return
        AlertRule.objects.filter(claim_token=self.token).update(
            claimed_until=timezone.now() + CLAIM_LEASE
        )
        self.renewed = time.monotonic()

    def release(self) -> None:
        AlertRule.objects.filter(claim_token=self.token).update(claimed_until=None, claim_token="")


def due_rule_ids(now: datetime, limit: int = 10_000) -> list[int]:
    return list(
        AlertRule.objects.filter(enabled=True, next_evaluation_at__lte=now)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .order_by("next_evaluation_at")
        .values_list("pk", flat=True)[:limit]
    )


def evaluate_claimed(
    rule_ids: Iterable[int], at: datetime | None = None, due_only: bool = False
) -> list[Outcome]:
    """Claim the given rules and evaluate those this worker won, sharing queries.

    `at` evaluates at a fixed time (tests and backfills); None means now.
    """
    lease = Lease(claim(rule_ids, timezone.now(), due_only))
    rules = list(
        AlertRule.objects.filter(claim_token=lease.token, claimed_until__isnull=False)
        .select_related("source", "service", "organization")
        .order_by("pk")
    )
    try:
        return evaluate(rules, at or timezone.now(), lease.renew)
    finally:
        lease.release()


def _save_states(rules: list[AlertRule]) -> None:
    """Write each rule's evaluation state in one round of statements.

    The ORM's bulk_update builds a CASE expression per field and row, which cost
    more than the evaluation itself; executemany sends plain parameterised rows.
    """
    table = AlertRule._meta.db_table
    ops = connection.ops
    rows = [
        (
            rule.state,
            rule.verification,
            rule.verification_note,
            json.dumps(rule.instances),
            rule.last_value,
            rule.last_error,
            ops.adapt_datetimefield_value(rule.last_evaluated_at),
            ops.adapt_datetimefield_value(rule.next_evaluation_at),
            rule.pk,
        )
        for rule in rules
    ]
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET state = %s, verification = %s, verification_note = %s, "  # noqa: S608
            "instances = %s, last_value = %s, "
            "last_error = %s, last_evaluated_at = %s, next_evaluation_at = %s WHERE id = %s",
            rows,
        )


@dataclass(frozen=True)
class Answer:
    samples: list | None
    error: SourceError | None
    seconds: float


class InternalFailure(SourceError):
    """Measuring an internal signal raised: a bug, kept to the rules that read it."""


# A source that cannot be reached is skipped for the rest of the batch, not asked
# again per expression: a dead source must not hold the batch for timeout x queries.
SOURCE_DOWN = (SourceUnavailable, SourceTimeout)


def evaluate(
    rules: list[AlertRule], now: datetime, heartbeat: Callable[[], None] = lambda: None
) -> list[Outcome]:
    """Evaluate the rules at `now`. Rules sharing source and expression share one query.

    All queries are made first, outside any transaction; then every outcome is
    written in one transaction (a commit per rule would cost a disk flush per rule).
    """
    groups: dict[tuple, list[AlertRule]] = defaultdict(list)
    for rule in rules:
        scope = rule.source_id if rule.source_id else f"org:{rule.organization_id}"
        groups[(scope, rule.expr.strip())].append(rule)

    answers: dict[tuple, Answer] = {}
    down: dict[int, SourceError] = {}
    answered: set[int] = set()
    clients: dict[int, PrometheusClient] = {}  # one connection per source for the batch
    for key, group in groups.items():
        heartbeat()
        first = group[0]
        if first.source_id in down:
            answers[key] = Answer(None, down[first.source_id], 0.0)
            continue
        started = time.perf_counter()
        try:
            samples, error = _query(first, now, clients), None
        except SourceError as failure:
            samples, error = None, failure
        except Exception as failure:  # a bug in an internal signal
            logger.exception("measuring %s failed", first.expr)
            samples, error = None, InternalFailure(f"internal error: {failure}")
        answers[key] = Answer(samples, error, time.perf_counter() - started)
        if first.source_id and isinstance(error, SOURCE_DOWN):
            down[first.source_id] = error
        elif first.source_id:
            answered.add(first.source_id)

    outcomes = []
    with transaction.atomic():
        for key, group in groups.items():
            answer = answers[key]
            for rule in group:
                outcomes.append(_apply(rule, answer, now, answer.seconds / len(group)))
        _save_states(rules)
    # Outside the batch's transaction: every worker touches the same source rows.
    # Health is wall-clock time even when evaluating at a fixed `now` (tests, backfills).
    health = {source_id: None for source_id in answered}
    health.update({source_id: error.message for source_id, error in down.items()})
    _record_source_health(health, timezone.now())
    _publish_firing_gauge()
    return outcomes


def _query(rule: AlertRule, now: datetime, clients: dict[int, PrometheusClient]) -> list:
    if rule.source_id is None:
        return internal_signals.measure(rule.expr.strip(), rule.organization_id)
    if rule.source_id not in clients:
        clients[rule.source_id] = client_for(rule.source)
    return clients[rule.source_id].query(rule.expr, at=now)


def _apply(rule: AlertRule, answer: Answer, now: datetime, query_seconds: float) -> Outcome:
    started = time.perf_counter()
    attributes = {
        "alerting.rule.key": rule.key,
        "app.organization.id": str(rule.organization_id),
        "alerting.service": rule.service.slug if rule.service_id else "",
    }
    opened = resolved = 0
    with (
        context.scope(organization_id=str(rule.organization_id)),
        tracing.span("alerting.evaluate", attributes) as span,
    ):
        previous = states.load_instances(rule.instances)
        try:
            result, current, transitions = _step(rule, answer, previous, now)
            if transitions or _values_changed(previous, current):
                with transaction.atomic():  # a savepoint: one rule's failure spares the rest
                    opened, resolved = _act(rule, previous, current, transitions, now)
        except Exception as failure:
            # Keep the old instances: the transitions are tried again next time.
            logger.exception("evaluating rule %s failed", rule.key)
            result, current = "error", dict(previous)
            rule.state = AlertRule.State.UNKNOWN
            rule.last_error = f"internal error: {failure}"
        span.set_attribute("alerting.result", result)
        rule.instances = states.dump_instances(current)
        rule.last_evaluated_at = now
        rule.next_evaluation_at = timezone.now() + min(rule.interval, LONGEST_INTERVAL)
    metrics.controlplane_rule_evaluations_total.labels(result=result).inc()
    metrics.controlplane_rule_evaluation_duration_seconds.observe(
        time.perf_counter() - started + query_seconds
    )
    return Outcome(rule.pk, result, query_seconds, opened, resolved)


def _step(rule: AlertRule, answer: Answer, previous, now: datetime):
    """(result, instances, transitions) of one rule; nothing moves on a failure."""
    if answer.error is not None:
        if isinstance(answer.error, InternalFailure):
            result = "error"
        elif isinstance(answer.error, (BadQuery, QueryFailed)):
            result = "bad_query"  # the rule's fault, not the source's
        else:
            result = "source_error"
        rule.state, rule.last_error = AlertRule.State.UNKNOWN, answer.error.message
        return result, *states.step_unknown(previous, now)
    try:
        breaching = states.breaching(answer.samples, rule.op or None, rule.threshold)
        keyed = states.by_fingerprint(rule_identity(rule), breaching)
    except ValueError as failure:  # duplicate label sets, a bad operator
        rule.state, rule.last_error = AlertRule.State.UNKNOWN, str(failure)
        return "bad_query", *states.step_unknown(previous, now)
    current, transitions = states.step(
        previous, keyed, now, rule.for_duration, rule.keep_firing_for
    )
    rule.state, rule.last_error = states.rule_state(current), ""
    rule.last_value = _headline(answer.samples)
    if rule.source_id and rule.verification == AlertRule.Verification.UNVERIFIED:
        # The source ran the expression: it parses. (Saved while the source was down.)
        rule.verification = AlertRule.Verification.VERIFIED
        rule.verification_note = "Checked by its first successful evaluation."
    return "ok", current, transitions


def rule_identity(rule: AlertRule) -> str:
    # The rule's id, not its key: renaming a rule must not resolve and reopen its alerts.
    return f"{rule.organization_id}/rule-{rule.pk}"


def _headline(samples: list) -> float | None:
    """The value shown for the rule in lists: the largest sample, if any."""
    values = [s.value for s in samples if not math.isnan(s.value)]
    return max(values) if values else None


def _values_changed(previous, current) -> bool:
    return any(
        instance.state == "firing"
        and instance.fingerprint in previous
        and previous[instance.fingerprint].value != instance.value
        for instance in current.values()
    )


def _act(rule: AlertRule, previous, current, transitions, now: datetime) -> tuple[int, int]:
    opened = resolved = 0
    for change in transitions:
        if change.kind == "firing":
            labels = {**change.labels, **rule.labels}
            _, created = lifecycle.open_alert(
                rule,
                change.fingerprint,
                labels,
                change.value,
                render_annotations(rule, labels, change.value),
                started_at=change.active_since,
            )
            opened += created
        elif change.kind == "resolved":
            for alert in Alert.objects.filter(
                organization_id=rule.organization_id, fingerprint=change.fingerprint
            ).exclude(state=Alert.State.RESOLVED):
                resolved += lifecycle.resolve(alert, note="condition no longer true", at=now)
    for instance in current.values():
        before = previous.get(instance.fingerprint)
        if instance.state == "firing" and before is not None and before.value != instance.value:
            Alert.objects.filter(
                organization_id=rule.organization_id, fingerprint=instance.fingerprint
            ).exclude(state=Alert.State.RESOLVED).update(value=instance.value)
    return opened, resolved


def render_annotations(rule: AlertRule, labels, value: float) -> dict[str, str]:
    rendered = {}
    for name, template in (rule.annotations or {}).items():
        try:
            rendered[name] = templates.render(template, labels, value)
        except templates.TemplateError as error:  # checked at save; keep the raw text
            logger.warning("annotation %s of rule %s did not render: %s", name, rule.key, error)
            rendered[name] = template
    return rendered


def _record_source_health(health: dict[int, str | None], now: datetime) -> None:
    for source_id, problem in health.items():
        if problem is None:
            # A healthy source is written at most every HEALTH_WRITE_INTERVAL.
            MetricSource.objects.filter(pk=source_id).filter(
                Q(failing_since__isnull=False)
                | Q(last_success_at__isnull=True)
                | Q(last_success_at__lt=now - HEALTH_WRITE_INTERVAL)
            ).update(failing_since=None, last_error="", last_success_at=now)
        else:
            MetricSource.objects.filter(pk=source_id, failing_since__isnull=True).update(
                failing_since=now
            )
            MetricSource.objects.filter(pk=source_id).update(last_error=problem)


def _publish_firing_gauge() -> None:
    from controlplane.alerting.models import Severity

    counts = dict(
        Alert.objects.filter(state=Alert.State.FIRING, is_test=False)
        .values_list("severity")
        .annotate(n=Count("pk"))
    )
    for severity in Severity.values:
        metrics.controlplane_alerts_firing.labels(severity=severity).set(counts.get(severity, 0))
