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

import contextvars
import dataclasses
import logging
import random
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, CharField, Count, Exists, F, OuterRef, Q, Value, When
from django.db.models.functions import Cast, Coalesce, Concat, Greatest
from django.urls import reverse
from django.utils import timezone

from controlplane.alerting import outbox
from controlplane.alerting.models import Alert, AlertEvent
from controlplane.audit import pseudonyms, recorder
from controlplane.catalog import actors
from controlplane.catalog.actors import Actor
from controlplane.paging import (
    alertmanager,
    links,
    metrics,
    pace,
    payloads,
    responders,
    transports,
)
from controlplane.paging.channels import ChannelConfig, ChannelConfigError, ChannelKind
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
# Attempts before a notification is given up: with the backoff below, about an hour.
MOST_ATTEMPTS = 8
FIRST_BACKOFF = timedelta(seconds=15)
LONGEST_BACKOFF = timedelta(minutes=30)
LONGEST_ERROR = 300

CLAIMABLE = (Notification.State.PENDING, Notification.State.FAILED)


def lease_duration() -> timedelta:
    """How long a claimed row is its claimer's (PAGING_LEASE_SECONDS): longer than any
    send can take (the outbound guard cuts an exchange at twice its 10 s timeout), so a
    live worker never loses a row it is sending; short enough that a killed worker's
    rows go out again soon."""
    return timedelta(seconds=settings.PAGING_LEASE_SECONDS)


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


# Contexts whose alerts come from a shared rule (a job monitor's, through the built-in
# etl.job.failure) name their own policy per alert: they register a finder here.
PolicyFinder = Callable[[Alert], "EscalationPolicy | None"]
_policy_finders: list[PolicyFinder] = []


def register_policy_finder(finder: PolicyFinder) -> PolicyFinder:
    """Add a finder (usable as a decorator); registering twice has no effect."""
    if finder not in _policy_finders:
        _policy_finders.append(finder)
    return finder


def policy_for(alert: Alert) -> EscalationPolicy | None:
    """The policy a registered finder names for the alert (a job monitor's), or its
    rule's (or SLO's, or Alertmanager integration's), or else the organisation's default."""
    for finder in _policy_finders:
        named = finder(alert)
        if named is not None:
            return named
    if alert.rule_id is not None:
        named = EscalationPolicy.objects.filter(rules__pk=alert.rule_id).first()
        if named is not None:
            return named
    if alert.slo_id is not None:
        named = EscalationPolicy.objects.filter(slos__pk=alert.slo_id).first()
        if named is not None:
            return named
    if alert.alertmanager_id is not None:
        named = EscalationPolicy.objects.filter(
            alertmanager_integrations__pk=alert.alertmanager_id
        ).first()
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
    # A schedule's rows (one per person reached, or one saying nobody was on call) make
    # its key, as a channel's row makes the channel's.
    sent = frozenset(
        NotificationKey(step, loop, reminder, channel or 0, event, 0 if channel else schedule)
        for step, loop, reminder, channel, schedule, event in alert.notifications.filter(
            Q(channel__isnull=False) | Q(schedule__isnull=False)
        ).values_list("step", "loop", "reminder", "channel_id", "schedule_id", "event")
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
    rows += responders.rows(alert, keys, now)
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    _audit_nobody_on_call(rows, now)
    nudge_delivery()
    return len(rows)


def _audit_nobody_on_call(rows: Sequence[Notification], now: datetime) -> None:
    """The rows saying nobody was on call are given up as they are written: each is
    recorded so. Their ids are read back (one query, only when there are any): the
    insert that ignores conflicts returns none. A row of this key written before `now`
    is not this write's and was recorded then."""
    dead = [row for row in rows if row.state == Notification.State.DEAD]
    if not dead:
        return
    written = {
        (schedule, step, loop, reminder, event): pk
        for pk, schedule, step, loop, reminder, event in Notification.objects.filter(
            alert_id=dead[0].alert_id,
            channel__isnull=True,
            responder__isnull=True,
            state=Notification.State.DEAD,
            created_at=now,
        ).values_list("pk", "schedule_id", "step", "loop", "reminder", "event")
    }
    actor = _system_actor(ESCALATOR)
    for row in dead:
        row.pk = written.get((row.schedule_id, row.step, row.loop, row.reminder, row.event))
        if row.pk is not None:
            _audit(row, GIVEN_UP, delivery_diff(row, None, NOBODY_ON_CALL), actor)


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


# Beat ticks every second, so a step would wait up to a second past its time. The tick
# looks this far ahead and asks for one more run at the earliest step due in it.
LOOK_AHEAD = timedelta(seconds=1)


def next_due(now: datetime | None = None) -> datetime | None:
    """The earliest escalation step due after `now` and within LOOK_AHEAD, if any."""
    now = now or timezone.now()
    return (
        Escalation.objects.filter(next_at__gt=now, next_at__lte=now + LOOK_AHEAD)
        .order_by("next_at")
        .values_list("next_at", flat=True)
        .first()
    )


# --- 3. deliver ------------------------------------------------------------------------


def _claimable(now: datetime) -> Q:
    due = Q(state__in=CLAIMABLE, next_attempt_at__lte=now) | Q(
        state=Notification.State.SENDING, lease_until__lt=now
    )
    # An alert's messages reach a channel in the order they were written: PagerDuty
    # drops an acknowledge or a resolve for a dedup_key it has not seen, so a resolve
    # that overtook its trigger's retry would leave the incident the trigger then opens
    # open for ever. A message given up (dead) holds nothing back.
    earlier_undelivered = Notification.objects.filter(
        alert_id=OuterRef("alert_id"),
        channel_id=OuterRef("channel_id"),
        pk__lt=OuterRef("pk"),
        state__in=QUEUED,
    )
    return due & ~Exists(earlier_undelivered)


def claim(now: datetime | None = None, limit: int = BATCH_SIZE) -> tuple[str, list[int]]:
    """Lease up to `limit` due notifications to a new lease, each channel at its pace.

    Under each channel's health-row lock, `pace.plan()` says how many of its waiting
    rows go now and in how many messages; those are leased, a row's lease token naming
    the message it goes in (`<lease>-<first row>`), and the rest are put off until the
    pace lets them go (so a held-back channel does not fill every claim). A channel
    another worker is pacing right now is left to it. An attempt is counted when a row
    is claimed, so a row that kills its worker every time still runs out.
    """
    now = now or timezone.now()
    lease = uuid.uuid4().hex[:16]
    with transaction.atomic():
        due = list(
            Notification.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(_claimable(now))
            .order_by("next_attempt_at", "pk")
            .values_list("pk", "channel_id", "channel__kind")[:limit]
        )
        waiting: dict[int | None, list[int]] = {}
        kinds: dict[int | None, str] = {}
        for pk, channel_id, kind in due:
            waiting.setdefault(channel_id, []).append(pk)
            kinds[channel_id] = kind
        # A round sends to at most SENDERS destinations side by side, each at most
        # `per_channel` messages in a row, so the last send starts well within the lease.
        # What does not fit stays due for the next round (the task runs several).
        per_channel = max(1, int(lease_duration() / LONGEST_SEND) - 1)
        # Rows with no channel (deleted, or a person on call) go alone.
        messages = [[pk] for pk in waiting.pop(None, [])][:SENDERS]
        put_off: dict[int, datetime] = {}
        paced = _lock_paces(list(waiting)[: SENDERS - len(messages)])
        for health in paced:
            rows = waiting[health.channel_id]
            # The channel's kind now, not when the rows were written: it may have changed.
            paced_as = pace.PACES[kinds[health.channel_id]]
            step = pace.plan(paced_as, health.pace_at, now, len(rows), most=per_channel)
            start = 0
            for size in step.sizes:
                messages.append(rows[start : start + size])
                start += size
            put_off.update((pk, step.next_at) for pk in rows[start:])
            health.pace_at = step.pace_at
        if paced:
            ChannelHealth.objects.bulk_update(paced, ["pace_at"])
        _lease(lease, messages, now)
        _put_off(put_off)
    return lease, [pk for message in messages for pk in message]


def _lock_paces(channel_ids: list[int]) -> list[ChannelHealth]:
    """The channels' health rows, locked; those another claimer holds are skipped."""
    if not channel_ids:
        return []
    ChannelHealth.objects.bulk_create(
        [ChannelHealth(channel_id=pk) for pk in channel_ids], ignore_conflicts=True
    )
    locked = ChannelHealth.objects.select_for_update(skip_locked=True)
    return list(locked.filter(pk__in=channel_ids))


def _lease(lease: str, messages: list[list[int]], now: datetime) -> None:
    """One statement for every row: a bundle's rows share `<lease>-<first row>`, a row
    alone gets `<lease>-<its pk>`."""
    if not messages:
        return
    bundles = [When(pk__in=m, then=Value(f"{lease}-{m[0]}")) for m in messages if len(m) > 1]
    alone = Concat(Value(f"{lease}-"), Cast("pk", CharField()))
    Notification.objects.filter(pk__in=[pk for m in messages for pk in m]).filter(
        _claimable(now)
    ).update(
        state=Notification.State.SENDING,
        lease_token=Case(*bundles, default=alone) if bundles else alone,
        lease_until=now + lease_duration(),
        attempts=F("attempts") + 1,
    )


def _put_off(until: dict[int, datetime]) -> None:
    """Rows the pace holds back wait, no attempt counted; one a killed worker left
    `sending` is said so and waits as a retry."""
    if not until:
        return
    at = Case(*(When(pk=pk, then=Value(when)) for pk, when in until.items()))
    rows = Notification.objects.filter(pk__in=list(until))
    rows.filter(state__in=CLAIMABLE).update(next_attempt_at=at)
    rows.filter(state=Notification.State.SENDING).update(
        state=Notification.State.FAILED,
        next_attempt_at=at,
        lease_token="",
        lease_until=None,
        last_error="the worker sending it stopped before recording an answer",
    )


def deliver_claimed(lease: str, ids: Iterable[int]) -> dict[str, int]:
    """Send every message of `lease`, each outcome recorded as it comes."""
    tally: dict[str, int] = {}
    rows = (
        Notification.objects.filter(
            pk__in=list(ids), lease_token__startswith=f"{lease}-", state=Notification.State.SENDING
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
    messages: dict[str, list[Notification]] = {}
    for row in rows:
        messages.setdefault(row.lease_token, []).append(row)
    # Built here, with the database at hand; the sending threads only send.
    queues: dict[object, list[_Ready]] = {}
    for token, message in messages.items():
        destination = message[0].channel_id or ("alone", message[0].pk)
        queues.setdefault(destination, []).append(_Ready(token, message, prepare(message)))
    for ready, outcome in _send_side_by_side(list(queues.values())):
        for state in record_message(ready.rows, ready.token, outcome):
            tally[state] = tally.get(state, 0) + 1
    return tally


@dataclass(frozen=True)
class _Ready:
    token: str
    rows: list[Notification]
    prepared: tuple[ChannelConfig, transports.Message] | Outcome


# Destinations sent to at once by one delivery round. Each channel's messages go in
# order on one thread; channels go side by side, so a receiver that hangs (up to the
# guard's 20 s) holds back its own messages, not the pages behind it in the lease.
SENDERS = 8
# The longest one send can take: the outbound guard cuts an exchange at twice its timeout.
LONGEST_SEND = timedelta(seconds=2 * transports.SEND_TIMEOUT)


def _send_side_by_side(
    queues: list[list[_Ready]],
) -> Iterator[tuple[_Ready, Outcome | Unsent]]:
    """Each outcome as its channel's queue ends, for the caller to record (on its own
    connection: the threads only send)."""
    if len(queues) == 1:
        yield from _send_in_order(queues[0])
        return
    with ThreadPoolExecutor(max_workers=min(SENDERS, len(queues))) as pool:
        # Each thread runs in a copy of this context: its sends stay in the task's trace.
        futures = [
            pool.submit(contextvars.copy_context().run, _send_in_order, queue) for queue in queues
        ]
        for future in as_completed(futures):
            yield from future.result()


def _send_in_order(queue: list[_Ready]) -> list[tuple[_Ready, Outcome | Unsent]]:
    sent: list[tuple[_Ready, Outcome | Unsent]] = []
    for ready in queue:
        if sent and isinstance(sent[-1][1], Retry | Unsent) and sent[-1][1].after_seconds:
            # The receiver asked to wait: the rest of the queue waits too, unspent.
            sent.append((ready, Unsent(sent[-1][1].after_seconds)))
            continue
        sent.append((ready, _deliver(ready.prepared)))
    return sent


@dataclass(frozen=True)
class Unsent:
    """Not tried: the channel asked to wait `after_seconds` earlier in the round."""

    after_seconds: float


def _deliver(prepared: tuple[ChannelConfig, transports.Message] | Outcome) -> Outcome:
    if isinstance(prepared, Delivered | Retry | GiveUp):
        return prepared
    config, message = prepared
    try:
        return transports.deliver(config, message)
    except Exception as error:  # a deployment's bug (a broken EMAIL_* setting): say so
        logger.exception("sending a notification raised")
        return Retry(f"sending raised {type(error).__name__}: see the worker's log", None, None)


def deliver_due(now: datetime | None = None, limit: int = BATCH_SIZE) -> dict[str, int]:
    lease, ids = claim(now, limit)
    tally = deliver_claimed(lease, ids) if ids else {}
    measure_queue()
    return tally


def send(rows: Sequence[Notification]) -> Outcome:
    """One message for `rows` (one channel's), no transaction open: the answer may take
    seconds."""
    return _deliver(prepare(rows))


def prepare(rows: Sequence[Notification]) -> tuple[ChannelConfig, transports.Message] | Outcome:
    """Where `rows` go and the message they go in; an outcome when they cannot go. One
    message that cannot be built never stops the round: it is retried (its attempts
    bounded), the error logged."""
    try:
        return _prepare(rows)
    except Exception as error:
        logger.exception("building notification(s) %s raised", [row.pk for row in rows])
        return Retry(f"building the message raised {type(error).__name__}", None, None)


def _prepare(rows: Sequence[Notification]) -> tuple[ChannelConfig, transports.Message] | Outcome:
    channel = rows[0].channel
    if channel is None and rows[0].schedule_id is not None:
        # Someone on call: an email to them alone (claim sends channel-less rows alone).
        config = responders.email_config(rows[0])
        if isinstance(config, str):
            return GiveUp(config, None)
    elif channel is None:
        return GiveUp("the channel was deleted", None)
    else:
        try:
            config = channel.settings()
        except ChannelConfigError:
            return GiveUp("the channel's configuration is not valid: edit the channel", None)
    notices = [notice_for(row) for row in rows]
    if config.kind == ChannelKind.SLACK:
        notices = responders.with_mentions(rows, notices)
    return config, message_for(config, notices)


def message_for(config, notices: Sequence[payloads.AlertNotice]):
    """One notice's message, or a bundle's (pace.py says when notices are bundled)."""
    kind = config.kind
    if kind == ChannelKind.WEBHOOK:
        return payloads.webhook_body(notices)
    if len(notices) > 1 and kind == ChannelKind.EMAIL:
        return payloads.email_bundle(notices)
    if len(notices) > 1 and kind == ChannelKind.SLACK:
        return payloads.slack_bundle(notices, more_url=_absolute(reverse("alerts:index")))
    if len(notices) > 1:
        raise ValueError(f"{kind} notifications are never bundled")
    [notice] = notices
    if kind == ChannelKind.EMAIL:
        return payloads.email_message(notice)
    if kind == ChannelKind.SLACK:
        return payloads.slack_message(notice)
    return payloads.pagerduty_event(notice, config.routing_key)


def _absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}" if path else ""


# The events whose readers are asked to act: a link to acknowledge goes with them.
ASKING = ("trigger", "reminder")


def acknowledge_url(row: Notification, now: datetime | None = None) -> str:
    """The signed one-click link of a trigger or reminder (paging/links.py), issued at
    the send, so its 24 hours count from when the reader was told; "" for the others:
    an acknowledge, a resolve or a channel's test asks nothing of its reader."""
    if row.alert_id is None or row.event not in ASKING:
        return ""
    link = links.Link(row.alert_id, row.pk, links.Action.ACKNOWLEDGE, now or timezone.now())
    return _absolute(reverse("paging:respond", args=[row.alert_id, links.issue(link)]))


def notice_for(row: Notification) -> payloads.AlertNotice:
    alert = row.alert
    if alert is None:
        return test_notice(row)
    rule = alert.rule
    runbook = rule.runbook if rule is not None and rule.runbook_id else None
    if runbook is not None:
        runbook_url = _absolute(runbook.get_absolute_url())
    else:  # an alert from Alertmanager names its own: a page of ours, or an address
        link = alert.runbook_url
        runbook_url = _absolute(link) if link.startswith("/") else link
    summary = alert.annotations.get("summary", "")
    if not summary and alert.alertmanager_id is not None:
        summary = alertmanager.summary_of(alert.annotations)
    return payloads.AlertNotice(
        alert_id=alert.pk,
        rule_key=alert.rule_key,
        rule_name=rule.name if rule is not None else alert.rule_key,
        summary=summary or alert.rule_key,
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
        runbook_url=runbook_url,
        alert_url=_absolute(alert.get_absolute_url()),
        acknowledge_url=acknowledge_url(row),
        resolved_at=alert.resolved_at,
        is_test=alert.is_test or row.is_test,
        notification_id=row.pk,
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
        notification_id=row.pk,
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
    [state] = record_message([row], token, outcome, now)
    return state


def record_message(
    rows: Sequence[Notification],
    token: str,
    outcome: Outcome | Unsent,
    now: datetime | None = None,
) -> list[str]:
    """Write one message's outcome on each of its rows whose lease is still `token`, and
    on its channel's health once; returns each row's new state ("lost lease" when
    another worker has taken the row since)."""
    now = now or timezone.now()
    if isinstance(outcome, Unsent):
        return _give_back(rows, token, outcome, now)
    # The claim counted this attempt already.
    results = [outcome_fields(outcome, row.attempts, now) for row in rows]
    # Few statements whatever the bundle's size: the time between the receiver's answer
    # and this commit is the only window in which a killed worker's message is sent
    # again, so it is kept short.
    with transaction.atomic():
        ours = set(
            Notification.objects.select_for_update()
            .filter(pk__in=[row.pk for row in rows], lease_token=token)
            .filter(state=Notification.State.SENDING)
            .values_list("pk", flat=True)
        )
        alike: dict[tuple, list[int]] = {}
        for row, result in zip(rows, results, strict=True):
            if row.pk in ours:
                key = (result.state, tuple(sorted(result.fields.items())))
                alike.setdefault(key, []).append(row.pk)
        for (state, fields), pks in alike.items():
            Notification.objects.filter(
                pk__in=pks, lease_token=token, state=Notification.State.SENDING
            ).update(state=state, lease_until=None, lease_token="", **dict(fields))
        # Not ours: the lease ran out and another worker took the row; its outcome counts.
        states = [
            result.state if row.pk in ours else "lost lease"
            for row, result in zip(rows, results, strict=True)
        ]
        _audit_outcomes(rows, states, outcome)
        if rows[0].channel_id is not None and ours:
            error = results[0].fields.get("last_error", "")
            _record_health(rows[0].channel_id, rows[0].channel_kind, outcome, error, now)
    for row, result, state in zip(rows, results, states, strict=True):
        if state != "lost lease":
            _said(row, result, now, bundled=len(rows))
    return states


# The audit trail's events of the ledger: the final outcomes only (a retry is not one:
# its row goes on). Each row is an event of its own, bundled or not: a row is the
# notification the trail names (its own alert, ledger id and state), so an object's
# history is whole; a bundle's rows say which message they went in.
DELIVERED = "notification.delivered"
GIVEN_UP = "notification.given_up"
AUDITED_STATES = {Notification.State.SENT: DELIVERED, Notification.State.DEAD: GIVEN_UP}
# Who delivers and who writes the rows, when no task names itself (a test, a command).
DELIVERER = Actor.system("paging.deliver_notifications")
ESCALATOR = Actor.system("paging.escalate")
# Why a row was given up, as the trail says it: a class, never the ledger's sentence
# (a responder's row may name them; the row keeps the sentence while it is kept).
RETRIES_EXHAUSTED = "retries exhausted"
REFUSED = "refused by the receiver"
NOT_SENDABLE = "could not be sent"
NOBODY_ON_CALL = "nobody on call"


def failure_class(outcome: Outcome) -> str | None:
    """The class of a final failure (pure): None for a delivery."""
    if isinstance(outcome, Delivered):
        return None
    if isinstance(outcome, Retry):
        return RETRIES_EXHAUSTED  # a Retry is final only once the attempts are spent
    return REFUSED if outcome.status is not None else NOT_SENDABLE


def destination(row: Notification, recipient: str | None = None) -> dict[str, str | None]:
    """Where a row went, as the trail says it (pure): a channel by name and kind; a
    person on call by schedule and pseudonym (`recipient`), never by name or address.
    A channel's name is a slug; a person's row is named "<schedule>: <username>"."""
    schedule, person, _ = row.channel_name.partition(":")
    if not person:
        return {"channel": row.channel_name, "kind": row.channel_kind}
    return {"schedule": schedule, "kind": row.channel_kind, "recipient": recipient}


def delivery_diff(
    row: Notification,
    outcome: Outcome | None,
    error: str | None = None,
    bundle: Sequence[int] = (),
    recipient: str | None = None,
) -> dict[str, object]:
    """The audit diff of a row delivered or given up (pure): never the channel's
    configuration (its URL may carry a secret) nor an address."""
    state = Notification.State.SENT if isinstance(outcome, Delivered) else Notification.State.DEAD
    diff: dict[str, object] = {
        # A row given up as it is written (nobody on call) was never sending.
        "state": {"from": Notification.State.SENDING, "to": state}
        if outcome is not None
        else {"to": state},
        "alert": row.alert_id,
        "event": row.event,
        **destination(row, recipient),
        "attempts": row.attempts,
        "status": getattr(outcome, "status", None),
    }
    error = error or (failure_class(outcome) if outcome is not None else None)
    if error:
        diff["error"] = error
    if len(bundle) > 1:
        diff["bundle"] = {"message": bundle[0], "size": len(bundle)}
    if row.is_test:
        diff["test"] = True
    return diff


def delivery_label(row: Notification) -> str:
    where = destination(row)
    to = where.get("channel") or f"{where['schedule']} (on call)"
    of = f" of alert {row.alert_id}" if row.alert_id is not None else ""
    return f"{row.event}{of} to {to}"


def _audit_outcomes(rows: Sequence[Notification], states: Sequence[str], outcome: Outcome) -> None:
    """An event per row delivered or given up, in the transaction that records it: one
    INSERT each, nothing read but a responder's pseudonym."""
    actor = _system_actor(DELIVERER)
    bundle = [row.pk for row in rows]
    for row, state in zip(rows, states, strict=True):
        action = AUDITED_STATES.get(state)
        if action is not None:
            diff = delivery_diff(row, outcome, bundle=bundle, recipient=_recipient(row))
            _audit(row, action, diff, actor)


def _audit(row: Notification, action: str, diff: dict[str, object], actor: Actor) -> None:
    recorder.record(
        action,
        organization_id=row.organization_id,
        object_type=recorder.object_type_of(Notification),
        object_id=row.pk,
        label=delivery_label(row),
        diff=diff,
        actor=actor,
    )


def _system_actor(default: Actor) -> Actor:
    """The task at work (`system:<task>`), else `default`: never a person or token whose
    request happened to run the delivery."""
    acting = actors.current(default)
    return acting if acting.kind == "system" else default


def _recipient(row: Notification) -> str | None:
    """A person's row's responder as the trail names people: by pseudonym (the row's
    responder and user are loaded already, to address the email)."""
    if row.channel_id is not None or row.responder_id is None:
        return None
    return f"user:{pseudonyms.of_user_id(row.responder.user_id) or pseudonyms.ERASED}"


def _give_back(
    rows: Sequence[Notification], token: str, unsent: Unsent, now: datetime
) -> list[str]:
    """Rows a round did not try (their channel asked to wait): due after the wait, the
    attempt their claim counted given back."""
    updated = Notification.objects.filter(
        pk__in=[row.pk for row in rows], lease_token=token, state=Notification.State.SENDING
    ).update(
        state=Notification.State.FAILED,
        lease_until=None,
        lease_token="",
        attempts=F("attempts") - 1,
        next_attempt_at=now + timedelta(seconds=unsent.after_seconds),
        last_error=f"held back: the receiver asked to wait {unsent.after_seconds:g} s",
    )
    return [Notification.State.FAILED] * updated + ["lost lease"] * (len(rows) - updated)


def _said(row: Notification, result: _Result, now: datetime, bundled: int) -> None:
    metrics.notifications.labels(row.channel_kind, row.event, OUTCOME_LABELS[result.state]).inc()
    # Beat's delivery ticks are kept out of the INFO log (quiet_ticks): each outcome is
    # said here instead, a give-up as a warning.
    logger.log(
        logging.WARNING if result.state == Notification.State.DEAD else logging.INFO,
        "notification %s (%s to %s %s, attempt %s%s): %s%s",
        row.pk,
        row.event,
        row.channel_kind,
        row.channel_name,
        row.attempts,
        f", one of {bundled} in a bundle" if bundled > 1 else "",
        result.state,
        f": {result.fields['last_error']}" if result.fields.get("last_error") else "",
        # The line is the delivery task's (its own trace); the alert's trace is named apart.
        extra={"alert_trace_id": row.trace_id or None, "alert_id": row.alert_id},
    )
    if result.state == Notification.State.SENT and row.event == "trigger" and row.alert:
        metrics.notification_delivery.observe(max((now - row.alert.started_at).total_seconds(), 0))


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


def _record_health(channel_id: int, kind: str, outcome: Outcome, error: str, now: datetime) -> None:
    """One statement, no read first: a claim holding the row's lock keeps it briefly."""
    if isinstance(outcome, Delivered):
        fields = {"consecutive_failures": 0, "last_success_at": now}
    else:
        fields = {
            "consecutive_failures": F("consecutive_failures") + 1,
            "last_failure_at": now,
            "last_error": error,
        }
    if isinstance(outcome, Retry) and outcome.after_seconds is not None:
        # The receiver asked to wait: the whole channel waits, not only this message.
        floor = Value(pace.held_back(pace.PACES[kind], None, now, outcome.after_seconds))
        fields["pace_at"] = Greatest(Coalesce("pace_at", floor), floor)
    if not ChannelHealth.objects.filter(pk=channel_id).update(**fields):
        # Recorded outside a claim (which makes the row): make it, then write.
        ChannelHealth.objects.get_or_create(channel_id=channel_id)
        ChannelHealth.objects.filter(pk=channel_id).update(**fields)


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
