"""Evaluating rules: query, compare, step the state machine, open and resolve alerts.

The pure parts live in `states` (the state machine), `schedule` (slots),
`templates` (annotations) and `promql` (the query API); this module is the edge
that reads the database and the sources and writes the outcome. It writes a
rule's `RuleEvaluation` only, never the rule a manager edits.
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
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from controlplane.alerting import internal_signals, lifecycle, metrics, schedule, states, templates
from controlplane.alerting.models import (
    LONGEST_INTERVAL,
    Alert,
    AlertRule,
    RuleEvaluation,
    Severity,
)
from controlplane.catalog import circuit, sources
from controlplane.catalog.actors import BEAT, Actor
from controlplane.catalog.models import MetricSource
from controlplane.promql.client import (
    BadQuery,
    PrometheusClient,
    QueryFailed,
    SourceError,
    SourceTimeout,
    SourceUnavailable,
)
from observability import context, tracing

logger = logging.getLogger(__name__)

# How long beat's queueing or a worker's hold on a rule lasts before another may
# take it (a lost task or a worker killed mid-evaluation must not keep its rules).
CLAIM_LEASE = timedelta(minutes=2)
# Where a disabled rule's next slot is put: out of the due index's way.
PARKED = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Outcome:
    rule_id: int
    result: str  # ok | source_error | bad_query | error | retired
    query_seconds: float
    opened: int = 0
    resolved: int = 0


def ensure_evaluations(rule_ids: Iterable[int] | None = None) -> int:
    """Create the evaluation row of every rule that lacks one (rules made by
    bulk_create or fixtures, which skip the post_save receiver)."""
    missing = AlertRule.objects.filter(evaluation__isnull=True)
    if rule_ids is not None:
        missing = missing.filter(pk__in=list(rule_ids))
    ids = list(missing.values_list("pk", flat=True))
    if ids:
        RuleEvaluation.objects.bulk_create(
            [RuleEvaluation(rule_id=pk) for pk in ids], ignore_conflicts=True
        )
    return len(ids)


def _free(now: datetime) -> Q:
    return Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)


def claim(rule_ids: Iterable[int], now: datetime, due_only: bool = False) -> str:
    """Take a lease on the rules no one else holds; returns the lease's token."""
    return claim_counted(rule_ids, now, due_only)[0]


def claim_counted(
    rule_ids: Iterable[int], now: datetime, due_only: bool = False
) -> tuple[str, int]:
    """`claim`, and how many rules the lease took (none when another got there first)."""
    token = uuid.uuid4().hex
    rows = RuleEvaluation.objects.filter(rule_id__in=list(rule_ids), rule__enabled=True).filter(
        _free(now)
    )
    if due_only:
        rows = rows.filter(due_at__lte=now)
    # An UPDATE cannot join: the enabled rules are picked by a subquery.
    taken = (
        RuleEvaluation.objects.filter(pk__in=rows.values("pk"))
        .filter(_free(now))
        .update(claimed_until=now + CLAIM_LEASE, claim_token=token)
    )
    return token, taken


class Lease:
    """Keeps a claim alive while a long batch (a slow source) is evaluated."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.renewed = time.monotonic()

    def renew(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.renewed < CLAIM_LEASE.total_seconds() / 4:
            return
        RuleEvaluation.objects.filter(claim_token=self.token).update(
            claimed_until=timezone.now() + CLAIM_LEASE
        )
        self.renewed = time.monotonic()

    def release(self) -> None:
        RuleEvaluation.objects.filter(claim_token=self.token).update(
            claimed_until=None, claim_token=""
        )


def due_rule_ids(now: datetime, limit: int = 10_000) -> list[int]:
    """Enabled rules whose slot has come and that nobody has queued or holds."""
    return list(
        RuleEvaluation.objects.filter(rule__enabled=True, due_at__lte=now)
        .filter(_free(now))
        .order_by("due_at")
        .values_list("rule_id", flat=True)[:limit]
    )


def evaluate_claimed(
    rule_ids: Iterable[int],
    at: datetime | None = None,
    due_only: bool = False,
    token: str | None = None,
    *,
    interactive: bool = False,
) -> list[Outcome]:
    """Evaluate the given rules this worker holds, sharing queries.

    `token` is the lease beat took when it queued them; without one the rules are
    claimed here. `at` evaluates at a fixed time (tests and backfills); None means now.
    `interactive` (someone waits in a request: the admin's "evaluate now") bounds each
    query by PROMQL_CHECK_SECONDS and all of them by INTERACTIVE_BUDGET.
    """
    rule_ids = list(rule_ids)
    if token is None:
        ensure_evaluations(rule_ids)
        token = claim(rule_ids, timezone.now(), due_only)
    lease = Lease(token)
    lease.renew(force=True)  # a task that waited in the queue starts a full lease
    rules = list(
        AlertRule.objects.filter(
            pk__in=rule_ids,
            evaluation__claim_token=token,
            evaluation__claimed_until__isnull=False,
        )
        .select_related("evaluation", "source", "service", "organization")
        .order_by("pk")
    )
    try:
        limits = (
            Limits(settings.PROMQL_CHECK_SECONDS, time.monotonic() + INTERACTIVE_BUDGET)
            if interactive
            else Limits()
        )
        return evaluate(
            rules,
            at or timezone.now(),
            lease.renew,
            token=token,
            on_slots=at is None,
            limits=limits,
        )
    finally:
        lease.release()


def _save_states(evaluations: list[RuleEvaluation]) -> None:
    """Write each rule's evaluation state in one round of statements.

    The ORM's bulk_update builds a CASE expression per field and row, which cost
    more than the evaluation itself; executemany sends plain parameterised rows.
    """
    table = RuleEvaluation._meta.db_table
    ops = connection.ops
    rows = [
        (
            row.state,
            json.dumps(row.instances),
            row.last_value,
            row.last_error,
            ops.adapt_datetimefield_value(row.last_evaluated_at),
            ops.adapt_datetimefield_value(row.slot_at),
            ops.adapt_datetimefield_value(row.due_at),
            row.rule_id,
        )
        for row in evaluations
    ]
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET state = %s, instances = %s, last_value = %s, "  # noqa: S608
            "last_error = %s, last_evaluated_at = %s, slot_at = %s, due_at = %s "
            "WHERE rule_id = %s",
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


def _evaluation_of(rule: AlertRule) -> RuleEvaluation:
    try:
        return rule.evaluation
    except RuleEvaluation.DoesNotExist:
        ensure_evaluations([rule.pk])
        rule.evaluation = RuleEvaluation.objects.get(rule_id=rule.pk)
        return rule.evaluation


@dataclass(frozen=True)
class Limits:
    """Bounds on a batch's queries beyond the sources' own timeouts (none on a worker)."""

    query_seconds: float | None = None  # each query at most this long
    ask_until: float | None = None  # time.monotonic() after which no source is asked


# Evaluate now runs in the admin's request: its sources are asked for this long at most
# (then "not asked"), so a page of dead sources stays well within gunicorn's timeout.
INTERACTIVE_BUDGET = 10.0


def evaluate(
    rules: list[AlertRule],
    now: datetime,
    heartbeat: Callable[[], None] = lambda: None,
    token: str | None = None,
    on_slots: bool = False,
    limits: Limits = Limits(),
) -> list[Outcome]:
    """Evaluate the rules at `now`. Rules sharing source and expression share one query.

    All queries are made first, outside any transaction; then every outcome is
    written in one transaction (a commit per rule would cost a disk flush per rule),
    for the rules still ours once their rows are locked: a rule disabled, deleted
    or given to another worker meanwhile keeps what that change wrote.

    With `on_slots`, each rule's state machine runs at its slot, as Prometheus
    evaluates at the scheduled timestamp: `for` and `keep_firing_for` then count
    whole intervals, whatever the lag of the task that served the slot; and a source
    is asked only when its circuit breaker admits the batch (`catalog.circuit`).
    """
    started = timezone.now()
    for rule in rules:
        _evaluation_of(rule)
    groups: dict[tuple, list[AlertRule]] = defaultdict(list)
    for rule in rules:
        scope = rule.source_id if rule.source_id else f"org:{rule.organization_id}"
        groups[(scope, rule.expr.strip())].append(rule)

    answers: dict[tuple, Answer] = {}
    down: dict[int, SourceError] = {}
    answered: set[int] = set()
    # Sources the circuit breaker kept us from asking: their rules are unknown, and
    # nothing was learnt of their health.
    held_back: dict[int, SourceError] = {}
    admitted: set[int] = set()
    clients: dict[int, PrometheusClient] = {}  # one connection per source for the batch
    timeouts = _query_timeouts(rules, limits.query_seconds)
    for key, group in groups.items():
        heartbeat()
        first = group[0]
        if first.source_id in down:
            answers[key] = Answer(None, down[first.source_id], 0.0)
            continue
        # The breaker guards the schedule; an evaluation asked for by hand (the admin's
        # "evaluate now") or a replay at a fixed time asks the source regardless.
        if on_slots and first.source_id and first.source_id not in admitted | held_back.keys():
            admission = circuit.admit(
                first.source_id,
                first.organization_id,
                timeouts[first.source_id],
                timezone.now(),
            )
            if admission.asked:
                admitted.add(first.source_id)
            else:
                held_back[first.source_id] = SourceUnavailable(admission.reason)
        if (
            first.source_id
            and first.source_id not in held_back
            and limits.ask_until is not None
            and time.monotonic() > limits.ask_until
        ):
            held_back[first.source_id] = SourceUnavailable(
                f"not asked: out of time for this request ({INTERACTIVE_BUDGET:g} s); "
                "the schedule evaluates it"
            )
        if first.source_id in held_back:
            answers[key] = Answer(None, held_back[first.source_id], 0.0)
            continue
        began = time.perf_counter()
        try:
            samples, error = _query(first, now, clients, timeouts), None
        except SourceError as failure:
            samples, error = None, failure
        except Exception as failure:  # a bug in an internal signal
            logger.exception("measuring %s failed", first.expr)
            samples, error = None, InternalFailure(f"internal error: {failure}")
        answers[key] = Answer(samples, error, time.perf_counter() - began)
        if first.source_id and isinstance(error, SOURCE_DOWN):
            down[first.source_id] = error
        elif first.source_id and not isinstance(error, InternalFailure):
            answered.add(first.source_id)

    outcomes = []
    with transaction.atomic():
        held = _lock_held(rules, token)
        written = []
        for key, group in groups.items():
            answer = answers[key]
            for rule in group:
                if rule.pk not in held:
                    outcomes.append(Outcome(rule.pk, "retired", 0.0))
                    continue
                outcomes.append(
                    _apply(rule, answer, now, started, answer.seconds / len(group), on_slots)
                )
                written.append(rule.evaluation)
        _save_states(written)
    # After the commit: it writes rule rows, which an edit locks before it locks
    # the evaluation row (`retire`); inside the batch that order would deadlock.
    ran = {outcome.rule_id for outcome in outcomes if outcome.result == "ok"}
    _verify([rule for rule in rules if rule.pk in ran])
    # Outside the batch's transaction: every worker touches the same source rows.
    # Health is wall-clock time even when evaluating at a fixed `now` (tests, backfills).
    # A source that answered one query and stalled on the next is down: answering only
    # the first expression of each batch must not keep it from its breaker.
    health: dict[int, SourceError | None] = {
        source_id: None for source_id in answered - down.keys()
    }
    health.update(down)
    wall = timezone.now()
    sources.record_health(health, wall)
    for source_id, problem in health.items():
        circuit.record(source_id, problem is None, wall)
    _publish_firing_gauge()
    return outcomes


def _lock_held(rules: list[AlertRule], token: str | None) -> set[int]:
    """Lock the rules' evaluation rows; the ids still enabled and (with a token) ours.

    A disable or delete locks the same row (`retire`), so it either waits for this
    batch to commit and then resolves what it opened, or goes first and this batch
    leaves the rule alone.
    """
    rows = RuleEvaluation.objects.select_for_update(of=("self",)).filter(
        rule_id__in=[rule.pk for rule in rules], rule__enabled=True
    )
    if token is not None:
        rows = rows.filter(claim_token=token)
    return set(rows.values_list("rule_id", flat=True))


def _verify(ran: list[AlertRule]) -> None:
    """A rule saved while its source was down is verified by a successful evaluation
    (the source ran the expression: it parses).

    Compare-and-set on the rule row: the one field of the definition the evaluator
    may write, only from unverified and only for the expression and source that ran,
    so it never marks an edit made meanwhile.
    """
    unverified = [
        rule
        for rule in ran
        if rule.source_id and rule.verification == AlertRule.Verification.UNVERIFIED
    ]
    if unverified:
        same_expression = Q()
        for rule in unverified:
            same_expression |= Q(pk=rule.pk, expr=rule.expr, source_id=rule.source_id)
        AlertRule.objects.filter(same_expression).filter(
            verification=AlertRule.Verification.UNVERIFIED
        ).update(
            verification=AlertRule.Verification.VERIFIED,
            verification_note="Checked by its first successful evaluation.",
        )


def _query_timeouts(rules: list[AlertRule], cap: float | None = None) -> dict[int, float]:
    """Per source, how long its query may take in this batch: its own timeout, but never
    more than the shortest interval of its rules here (a query outliving its rule's next
    slot only delays it), than MetricSource.LONGEST_TIMEOUT, nor than `cap`."""
    timeouts: dict[int, float] = {}
    for rule in rules:
        if rule.source_id is None:
            continue
        interval = min(rule.interval, LONGEST_INTERVAL).total_seconds()
        own = min(rule.source.timeout, MetricSource.LONGEST_TIMEOUT, cap or math.inf)
        timeouts[rule.source_id] = min(timeouts.get(rule.source_id, own), interval)
    return timeouts


def _query(
    rule: AlertRule,
    now: datetime,
    clients: dict[int, PrometheusClient],
    timeouts: dict[int, float],
) -> list:
    if rule.source_id is None:
        return internal_signals.measure(rule.expr.strip(), rule.organization_id)
    if rule.source_id not in clients:
        client = sources.client_for(rule.source)
        client.timeout = timeouts[rule.source_id]
        clients[rule.source_id] = client
    return clients[rule.source_id].query(rule.expr, at=now)


def _apply(
    rule: AlertRule,
    answer: Answer,
    now: datetime,
    started: datetime,
    query_seconds: float,
    on_slots: bool = False,
) -> Outcome:
    began = time.perf_counter()
    row = rule.evaluation
    interval = min(rule.interval, LONGEST_INTERVAL)
    # On schedule, the state machine runs at the slot served: the latest one passed,
    # so a backlog skips stale slots rather than stepping `for` from one of them.
    # Evaluated early (the admin's "evaluate now") or at a fixed time (a replay), it
    # runs at `now` and the schedule is left as it is.
    scheduled = on_slots and row.due_at <= now
    slot = schedule.current_slot(row.due_at, interval, now) if scheduled else row.due_at
    when = slot if scheduled else now
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
        previous = states.load_instances(row.instances)
        # Templates edited since the last evaluation re-render even if no value moved.
        edited = row.last_evaluated_at is None or rule.updated_at > row.last_evaluated_at
        try:
            result, current, transitions = _step(rule, row, answer, previous, when)
            firing = any(instance.state == "firing" for instance in current.values())
            if transitions or (firing and (edited or _values_changed(previous, current))):
                with transaction.atomic():  # a savepoint: one rule's failure spares the rest
                    opened, resolved = _act(rule, previous, current, transitions, when, edited)
        except Exception as failure:
            # Keep the old instances: the transitions are tried again next time.
            logger.exception("evaluating rule %s failed", rule.key)
            result, current = "error", dict(previous)
            row.state = AlertRule.State.UNKNOWN
            row.last_error = f"internal error: {failure}"
        span.set_attribute("alerting.result", result)
        row.instances = states.dump_instances(current)
        row.last_evaluated_at = now
        if scheduled:
            row.slot_at = slot
            # From the time of writing: a slot that passed during a long batch is skipped.
            row.due_at = schedule.next_slot(slot, interval, timezone.now())
    metrics.rule_evaluations.labels(result=result).inc()
    metrics.rule_evaluation_duration.observe(time.perf_counter() - began + query_seconds)
    if scheduled:
        metrics.rule_evaluation_lag.observe(schedule.lag(slot, started))
    return Outcome(rule.pk, result, query_seconds, opened, resolved)


def _step(rule: AlertRule, row: RuleEvaluation, answer: Answer, previous, now: datetime):
    """(result, instances, transitions) of one rule; nothing moves on a failure."""
    if answer.error is not None:
        if isinstance(answer.error, InternalFailure):
            result = "error"
        elif isinstance(answer.error, (BadQuery, QueryFailed)):
            result = "bad_query"  # the rule's fault, not the source's
        else:
            result = "source_error"
        row.state, row.last_error = AlertRule.State.UNKNOWN, answer.error.message
        return result, *states.step_unknown(previous, now)
    try:
        breaching = states.breaching(answer.samples, rule.op or None, rule.threshold)
        keyed = states.by_fingerprint(rule_identity(rule), breaching, rule.labels)
    except ValueError as failure:  # duplicate label sets, a bad operator
        row.state, row.last_error = AlertRule.State.UNKNOWN, str(failure)
        return "bad_query", *states.step_unknown(previous, now)
    current, transitions = states.step(
        previous, keyed, now, rule.for_duration, rule.keep_firing_for
    )
    row.state, row.last_error = states.rule_state(current), ""
    row.last_value = _headline(answer.samples)
    return "ok", current, transitions


def rule_identity(rule: AlertRule) -> str:
    # The rule's id, not its key: renaming a rule must not resolve and reopen its alerts.
    return f"{rule.organization_id}/rule-{rule.pk}"


def _headline(samples: list) -> float | None:
    """The value shown for the rule in lists: the largest sample, if any."""
    values = [s.value for s in samples if not math.isnan(s.value)]
    return max(values) if values else None


def _moved(before: float, after: float) -> bool:
    """Whether a value changed; NaN to NaN is no change (NaN != NaN)."""
    return not (before == after or (math.isnan(before) and math.isnan(after)))


def _values_changed(previous, current) -> bool:
    return any(
        instance.state == "firing"
        and instance.fingerprint in previous
        and _moved(previous[instance.fingerprint].value, instance.value)
        for instance in current.values()
    )


def _act(
    rule: AlertRule, previous, current, transitions, now: datetime, edited: bool
) -> tuple[int, int]:
    opened = resolved = 0
    for change in transitions:
        if change.kind == "firing":
            _, created = lifecycle.open_alert(
                rule,
                change.fingerprint,
                states.alert_labels(change.labels, rule.labels),
                change.value,
                render_annotations(rule, change.labels, change.value),
                started_at=change.active_since,
                actor=BEAT,
            )
            opened += created
        elif change.kind == "resolved":
            for alert in Alert.objects.filter(
                organization_id=rule.organization_id, fingerprint=change.fingerprint
            ).exclude(state=Alert.State.RESOLVED):
                resolved += lifecycle.resolve(
                    alert, actor=BEAT, note="condition no longer true", at=now
                )
    fired = {change.fingerprint for change in transitions if change.kind == "firing"}
    for instance in current.values():
        before = previous.get(instance.fingerprint)
        if instance.state != "firing" or instance.fingerprint in fired or before is None:
            continue
        if instance.last_true_at != now:
            continue  # kept firing by keep_firing_for: Prometheus keeps its last text
        if edited or _moved(before.value, instance.value):
            lifecycle.refresh_open(
                rule.organization_id,
                instance.fingerprint,
                instance.value,
                render_annotations(rule, instance.labels, instance.value),
                # The rule's labels edited: the open alert carries them from now on.
                labels=states.alert_labels(instance.labels, rule.labels) if edited else None,
            )
    return opened, resolved


def render_annotations(rule: AlertRule, labels, value: float) -> dict[str, str]:
    """The rule's annotations for one series: `labels` are the query result's."""
    rendered = {}
    for name, template in (rule.annotations or {}).items():
        try:
            rendered[name] = templates.render(template, labels, value)
        except templates.TemplateError as error:  # checked at save; keep the raw text
            logger.warning("annotation %s of rule %s did not render: %s", name, rule.key, error)
            rendered[name] = template
    return rendered


def retire(rule: AlertRule, note: str, actor: Actor) -> int:
    """A rule disabled or deleted: forget its instances, resolve its open alerts.

    Locks the rule's evaluation row first, as a batch writing its outcome does, so
    an evaluation in flight either commits before (and its alerts are resolved
    here) or finds the rule no longer its own and writes nothing.
    """
    with transaction.atomic():
        locked = list(RuleEvaluation.objects.select_for_update().filter(rule_id=rule.pk))
        if locked:
            RuleEvaluation.objects.filter(rule_id=rule.pk).update(
                instances=[],
                state=AlertRule.State.INACTIVE,
                claimed_until=None,
                claim_token="",
                # Parked: the due query never walks it; enabling the rule brings it back.
                due_at=PARKED,
            )
        return lifecycle.retire_rule_alerts(rule, note, actor)


def _publish_firing_gauge() -> None:
    counts = dict(
        Alert.objects.filter(state=Alert.State.FIRING, is_test=False)
        .values_list("severity")
        .annotate(n=Count("pk"))
    )
    for severity in Severity.values:
        metrics.alerts_firing.labels(severity=severity).set(counts.get(severity, 0))
