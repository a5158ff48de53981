"""The edges of paging: deciding in transactions, sending outside them.

Three moments, each a small named stage:

1. **Start and follow** (`handle`, the alert outbox's "paging" consumer): an opened
   alert gets its `Escalation`, a snapshot of its rule's policy (or the
   organisation's default); every later event of the alert (acknowledged, resolved,
   silenced, un-silenced) runs `decide()` again. It runs inside the transaction that
   takes the outbox event, so the notifications it writes and the event's `done` commit
   together, or not at all.
2. **Escalate** (`escalate_due`, beat's tick every second): escalations whose
   `next_at` has come are locked (`skip_locked`: two ticks never take the same one)
   and `decide()` writes what is due.
3. **Deliver** (`claim` and `deliver_claimed`, the delivery worker): due rows are
   leased with a compare-and-set update, sent with no transaction open, and the
   answer is recorded only if the lease is still ours. A worker killed mid-send leaves
   its rows `sending` until the lease runs out; the next claim takes them again.
   PagerDuty folds such a repeat by the alert's dedup_key; a Slack, email or webhook
   receiver sees it only when the worker died between the receiver's answer and the
   commit recording it.

A notification is a row before it is a request: `decide()`'s keys are written in the
transaction that decided them, and the ledger's unique key makes a second writer's
insert a no-op.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from controlplane.alerting import outbox
from controlplane.alerting.models import Alert, AlertEvent
from controlplane.paging import metrics, payloads, transports
from controlplane.paging.channels import ChannelConfigError, ChannelKind
from controlplane.paging.escalation import AlertFacts, NotificationKey, PolicyError, decide
from controlplane.paging.models import (
    ChannelHealth,
    Escalation,
    EscalationPolicy,
    Notification,
    NotificationChannel,
)
from controlplane.paging.transports import Delivered, GiveUp, Outcome, Retry
from observability import tracing

logger = logging.getLogger(__name__)

# Escalations advanced per tick, and rows claimed per delivery round: enough to
# amortise the query, few enough that one worker does not sit on the backlog.
BATCH_SIZE = 100
# A claimed row is the claimer's for this long. Longer than any send can take (the
# outbound guard cuts an exchange at twice its 10 s timeout), so a live worker never
# loses a row it is sending; short enough that a killed worker's rows go out again soon.
LEASE = timedelta(seconds=60)
# Attempts before a notification is given up: with the backoff below, about an hour.
MOST_ATTEMPTS = 8
FIRST_BACKOFF = timedelta(seconds=15)
LONGEST_BACKOFF = timedelta(minutes=30)
LONGEST_ERROR = 300

CLAIMABLE = (Notification.State.PENDING, Notification.State.FAILED)


# --- 1. start and follow: the outbox consumer ------------------------------------------


def handle(event: AlertEvent) -> str:
    """The alert outbox's "paging" consumer: runs in the transaction taking `event`."""
    alert = event.alert
    if event.kind == AlertEvent.Kind.OPENED:
        escalation = start(alert)
        if escalation is None:
            return "no escalation policy: nobody is notified"
    elif event.kind in {
        AlertEvent.Kind.ACKNOWLEDGED,
        AlertEvent.Kind.RESOLVED,
        AlertEvent.Kind.SILENCED,
        AlertEvent.Kind.UNSILENCED,
    }:
        escalation = Escalation.objects.select_for_update().filter(alert=alert).first()
        if escalation is None:
            return "not escalated"
    else:
        return "nothing to do"
    written = advance(escalation, timezone.now())
    return f"{written} notification(s) written"


def policy_for(alert: Alert) -> EscalationPolicy | None:
    """The rule's policy, or else the organisation's default."""
    if alert.rule_id is not None:
        named = EscalationPolicy.objects.filter(rules__pk=alert.rule_id).first()
        if named is not None:
            return named
    return EscalationPolicy.objects.filter(
        organization_id=alert.organization_id, is_default=True
    ).first()


def start(alert: Alert) -> Escalation | None:
    """The alert's escalation, on a snapshot of its policy taken now (once)."""
    existing = Escalation.objects.select_for_update().filter(alert=alert).first()
    if existing is not None:  # the event handed over again after a crash
        return existing
    policy = policy_for(alert)
    if policy is None:
        return None
    try:
        snapshot = policy.snapshot()
    except PolicyError as error:
        # A policy saved through the ORM, bypassing the checks: say so on the event.
        logger.warning("escalation policy %s cannot run: %s", policy.pk, error)
        return None
    return Escalation.objects.create(
        alert=alert,
        policy=policy,
        policy_version=snapshot.version,
        snapshot=snapshot.to_json(),
        started_at=alert.started_at,
    )


def reapply(escalation: Escalation, now: datetime | None = None) -> int:
    """Switch an escalation to its policy's current version; keys already written stay
    written, steps of the new version already due go out now."""
    now = now or timezone.now()
    policy = escalation.policy
    if policy is None:
        raise PolicyError({"policy": ["The policy was deleted."]})
    snapshot = policy.snapshot()
    snapshot.validate()
    previous = escalation.policy_snapshot()
    # An incident opened under the old version still gets its acknowledge and resolve.
    snapshot = dataclasses.replace(
        snapshot, pagerduty_channels=snapshot.pagerduty_channels | previous.pagerduty_channels
    )
    escalation.snapshot = snapshot.to_json()
    escalation.policy_version = snapshot.version
    escalation.reapplied_at = now
    escalation.save(update_fields=["snapshot", "policy_version", "reapplied_at"])
    return advance(escalation, now)


def facts_of(alert: Alert) -> AlertFacts:
    return AlertFacts(
        opened_at=alert.started_at,
        acknowledged_at=alert.acknowledged_at,
        resolved_at=alert.resolved_at,
        silenced=alert.silenced_by_id is not None,
        is_test=alert.is_test,
    )


def advance(escalation: Escalation, now: datetime) -> int:
    """Write the notifications due now and set when to look again. Call with the
    escalation's row locked (handle and escalate_due do)."""
    alert = Alert.objects.get(pk=escalation.alert_id)
    sent = frozenset(
        NotificationKey(step, loop, reminder, channel, event)
        for step, loop, reminder, channel, event in alert.notifications.exclude(
            channel=None
        ).values_list("step", "loop", "reminder", "channel_id", "event")
    )
    decision = decide(escalation.policy_snapshot(), facts_of(alert), now, sent)
    written = write(alert, decision.due, now)
    if escalation.next_at != decision.next_at:
        escalation.next_at = decision.next_at
        escalation.save(update_fields=["next_at"])
    return written


def write(alert: Alert, keys: Iterable[NotificationKey], now: datetime) -> int:
    keys = list(keys)
    if not keys:
        return 0
    channels = NotificationChannel.objects.in_bulk({key.channel for key in keys})
    rows = [
        Notification(
            organization_id=alert.organization_id,
            alert=alert,
            channel=channels[key.channel],
            channel_name=channels[key.channel].name,
            channel_kind=channels[key.channel].kind,
            step=key.step,
            loop=key.loop,
            reminder=key.reminder,
            event=key.event,
            next_attempt_at=now,
            trace_id=alert.trace_id,
            is_test=alert.is_test,
            created_at=now,
        )
        # A channel deleted since the snapshot was taken has nobody to tell.
        for key in keys
        if key.channel in channels
    ]
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    nudge_delivery()
    return len(rows)


# --- 2. escalate: beat's tick ----------------------------------------------------------


def escalate_due(now: datetime | None = None, limit: int = BATCH_SIZE) -> int:
    """Advance the escalations whose time has come; returns the notifications written."""
    now = now or timezone.now()
    written = 0
    with transaction.atomic():
        due = list(
            Escalation.objects.select_for_update(skip_locked=True)
            .filter(next_at__lte=now)
            .order_by("next_at")[:limit]
        )
        for escalation in due:
            written += advance(escalation, now)
    return written


# --- 3. deliver ------------------------------------------------------------------------


def _claimable(now: datetime) -> Q:
    return Q(state__in=CLAIMABLE, next_attempt_at__lte=now) | Q(
        state=Notification.State.SENDING, lease_until__lt=now
    )


def claim(now: datetime | None = None, limit: int = BATCH_SIZE) -> tuple[str, list[int]]:
    """Lease up to `limit` due notifications to a new token; an attempt is counted
    when it is claimed, so a row that kills its worker every time still runs out."""
    now = now or timezone.now()
    token = uuid.uuid4().hex
    with transaction.atomic():
        ids = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(_claimable(now))
            .order_by("next_attempt_at", "pk")
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            Notification.objects.filter(pk__in=ids).filter(_claimable(now)).update(
                state=Notification.State.SENDING,
                lease_token=token,
                lease_until=now + LEASE,
                attempts=F("attempts") + 1,
            )
    return token, ids


def deliver_claimed(token: str, ids: Iterable[int]) -> dict[str, int]:
    """Send every row of the lease `token`, each outcome recorded as it comes."""
    tally: dict[str, int] = {}
    rows = (
        Notification.objects.filter(
            pk__in=list(ids), lease_token=token, state=Notification.State.SENDING
        )
        .select_related(
            "organization",
            "alert",
            "alert__rule",
            "alert__service",
            "alert__organization",
            "channel",
        )
        .order_by("pk")
    )
    for row in rows:
        outcome = send(row)
        state = record(row, token, outcome)
        tally[state] = tally.get(state, 0) + 1
    return tally


def deliver_due(now: datetime | None = None, limit: int = BATCH_SIZE) -> dict[str, int]:
    token, ids = claim(now, limit)
    tally = deliver_claimed(token, ids) if ids else {}
    measure_queue()
    return tally


def send(row: Notification) -> Outcome:
    """One request, no transaction open: the answer may take seconds."""
    channel = row.channel
    if channel is None:
        return GiveUp("the channel was deleted", None)
    try:
        config = channel.settings()
    except ChannelConfigError:
        return GiveUp("the channel's configuration is not valid: edit the channel", None)
    notice = notice_for(row)
    message = message_for(config, notice)
    return transports.deliver(config, message)


def message_for(config, notice: payloads.AlertNotice):
    kind = config.kind
    if kind == ChannelKind.EMAIL:
        return payloads.email_message(notice)
    if kind == ChannelKind.SLACK:
        return payloads.slack_message(notice)
    if kind == ChannelKind.PAGERDUTY:
        return payloads.pagerduty_event(notice, config.routing_key)
    return payloads.webhook_body([notice])


def _absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}" if path else ""


def notice_for(row: Notification) -> payloads.AlertNotice:
    alert = row.alert
    if alert is None:
        return test_notice(row)
    rule = alert.rule
    runbook = rule.runbook if rule is not None and rule.runbook_id else None
    return payloads.AlertNotice(
        alert_id=alert.pk,
        rule_key=alert.rule_key,
        rule_name=rule.name if rule is not None else alert.rule_key,
        summary=alert.annotations.get("summary", "") or alert.rule_key,
        severity=alert.severity,
        event=row.event,
        value=alert.value,
        opened_at=alert.started_at,
        fingerprint=alert.fingerprint,
        organization=alert.organization.slug,
        trace_id=alert.trace_id,
        audit=payloads.AuditTags.from_alert(alert.audit or {}),
        labels=alert.labels or {},
        annotations=alert.annotations or {},
        service=alert.service.slug if alert.service is not None else "",
        runbook_url=_absolute(runbook.get_absolute_url()) if runbook is not None else "",
        alert_url=_absolute(alert.get_absolute_url()),
        resolved_at=alert.resolved_at,
        is_test=alert.is_test or row.is_test,
    )


def test_notice(row: Notification) -> payloads.AlertNotice:
    """What a channel's "send test notification" says: marked a test everywhere."""
    return payloads.AlertNotice(
        alert_id=0,
        rule_key="test",
        rule_name="Test notification",
        summary=f"Test notification for the channel {row.channel_name}: it works.",
        severity="info",
        event="test",
        value=None,
        opened_at=row.created_at,
        fingerprint=f"test-{row.pk}",
        organization=row.organization.slug,
        trace_id=row.trace_id,
        is_test=True,
    )


def send_test(channel_list: Iterable[NotificationChannel]) -> int:
    """Queue a test notification to each channel; the delivery worker sends it and the
    ledger shows how it went."""
    now = timezone.now()
    trace_id = tracing.current_trace_id() or ""
    rows = [
        Notification(
            organization_id=channel.organization_id,
            channel=channel,
            channel_name=channel.name,
            channel_kind=channel.kind,
            event="test",
            is_test=True,
            next_attempt_at=now,
            created_at=now,
            trace_id=trace_id,
        )
        for channel in channel_list
    ]
    with transaction.atomic():
        Notification.objects.bulk_create(rows)
        if rows:
            nudge_delivery()
    return len(rows)


@dataclass(frozen=True)
class _Result:
    state: str
    fields: dict


def backoff(attempts: int, after_seconds: float | None, rng: random.Random = random) -> timedelta:
    """When to try again after `attempts` attempts: the receiver's Retry-After when it
    gave one, else doubling from 15 s with ±20 % jitter (so a storm's retries spread)."""
    if after_seconds is not None:
        return timedelta(seconds=after_seconds)
    base = min(FIRST_BACKOFF * (2 ** max(attempts - 1, 0)), LONGEST_BACKOFF)
    return base * rng.uniform(0.8, 1.2)


def outcome_fields(outcome: Outcome, attempts: int, now: datetime) -> _Result:
    """The ledger's columns after `outcome` (pure; `record` writes them)."""
    if isinstance(outcome, Delivered):
        return _Result(
            Notification.State.SENT,
            {"sent_at": now, "last_status": outcome.status, "last_error": ""},
        )
    reason = outcome.reason[:LONGEST_ERROR]
    if isinstance(outcome, Retry) and attempts < MOST_ATTEMPTS:
        return _Result(
            Notification.State.FAILED,
            {
                "next_attempt_at": now + backoff(attempts, outcome.after_seconds),
                "last_status": outcome.status,
                "last_error": reason,
            },
        )
    if isinstance(outcome, Retry):
        reason = f"gave up after {attempts} attempts: {reason}"[:LONGEST_ERROR]
    return _Result(Notification.State.DEAD, {"last_status": outcome.status, "last_error": reason})


def record(row: Notification, token: str, outcome: Outcome, now: datetime | None = None) -> str:
    """Write the outcome if the lease is still ours; returns the row's new state."""
    now = now or timezone.now()
    # The claim counted this attempt already.
    result = outcome_fields(outcome, row.attempts, now)
    with transaction.atomic():
        updated = Notification.objects.filter(
            pk=row.pk, lease_token=token, state=Notification.State.SENDING
        ).update(state=result.state, lease_until=None, lease_token="", **result.fields)
        if not updated:
            # The lease ran out and another worker took the row: its outcome counts.
            return "lost lease"
        if row.channel_id is not None:
            _record_health(row.channel_id, result.state, result.fields.get("last_error", ""), now)
    metrics.notifications.labels(row.channel_kind, row.event, OUTCOME_LABELS[result.state]).inc()
    # Beat's delivery ticks are kept out of the INFO log (quiet_ticks): each outcome is
    # said here instead, a give-up as a warning.
    logger.log(
        logging.WARNING if result.state == Notification.State.DEAD else logging.INFO,
        "notification %s (%s to %s %s, attempt %s): %s%s",
        row.pk,
        row.event,
        row.channel_kind,
        row.channel_name,
        row.attempts,
        result.state,
        f": {result.fields['last_error']}" if result.fields.get("last_error") else "",
        # The line is the delivery task's (its own trace); the alert's trace is named apart.
        extra={"alert_trace_id": row.trace_id or None, "alert_id": row.alert_id},
    )
    if result.state == Notification.State.SENT and row.event == "trigger" and row.alert:
        metrics.notification_delivery.observe(max((now - row.alert.started_at).total_seconds(), 0))
    return result.state


# The `outcome` label of controlplane_notifications_total, by the row's new state.
OUTCOME_LABELS = {
    Notification.State.SENT: "sent",
    Notification.State.FAILED: "retry",
    Notification.State.DEAD: "dead",
}


def measure_queue() -> None:
    """controlplane_notification_queue_depth, set by every delivery round."""
    waiting = dict(
        Notification.objects.filter(state__in=QUEUED)
        .values_list("state")
        .annotate(count=Count("pk"))
        .values_list("state", "count")
    )
    for state in QUEUED:
        metrics.notification_queue_depth.labels(state).set(waiting.get(state, 0))


QUEUED = (Notification.State.PENDING, Notification.State.SENDING, Notification.State.FAILED)


def _record_health(channel_id: int, state: str, error: str, now: datetime) -> None:
    health, _ = ChannelHealth.objects.select_for_update().get_or_create(channel_id=channel_id)
    if state == Notification.State.SENT:
        health.consecutive_failures = 0
        health.last_success_at = now
        fields = ["consecutive_failures", "last_success_at"]
    else:
        health.consecutive_failures += 1
        health.last_failure_at = now
        health.last_error = error
        fields = ["consecutive_failures", "last_failure_at", "last_error"]
    health.save(update_fields=fields)


def retry_now(notifications) -> int:
    """The admin's "retry now" on dead (or failed) notifications: due again at once."""
    return notifications.filter(
        state__in=[Notification.State.DEAD, Notification.State.FAILED]
    ).update(
        state=Notification.State.PENDING,
        next_attempt_at=timezone.now(),
        attempts=0,
        last_error="",
    )


def nudge_delivery() -> None:
    """Ask a worker to deliver right after this transaction commits (once per
    transaction). A latency convenience: beat's tick finds the rows anyway."""
    outbox.once_after_commit(_nudge)


def _nudge() -> None:
    from controlplane.paging.tasks import deliver_notifications

    try:
        deliver_notifications.apply_async(expires=30)
    except Exception:  # the broker is down: beat's tick will deliver
        logger.warning("could not queue a delivery", exc_info=True)
