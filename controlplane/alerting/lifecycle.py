"""Opening, acknowledging and resolving alerts: the only ways an alert changes state.

Each function writes the alert and its timeline in one transaction and sends its
signal (controlplane.alerting.signals) once that transaction has committed.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.db import IntegrityError, transaction
from django.utils import timezone

from controlplane.alerting import signals
from controlplane.alerting.models import SYSTEM_ACTOR, Alert, AlertEvent, AlertRule, Silence
from controlplane.alerting.silences import covers, parse_matchers, subject
from observability import context, tracing


def _send_after_commit(signal, alert: Alert, actor: str) -> None:
    transaction.on_commit(lambda: signal.send(sender=Alert, alert=alert, actor=actor))


def audit_tags(rule: AlertRule, actor: str) -> dict[str, str | None]:
    ids = context.current()
    return {
        "organization": str(rule.organization_id),
        "service": rule.service.slug if rule.service_id else None,
        "rule": rule.key,
        "actor": actor,
        "request_id": ids.request_id,
        "user_id": ids.user_id,
    }


def active_silence(rule: AlertRule, labels: Mapping[str, str], at=None) -> Silence | None:
    at = at or timezone.now()
    alert_subject = subject(rule.key, rule.service.slug if rule.service_id else None, labels)
    for silence in Silence.objects.filter(
        organization_id=rule.organization_id, starts_at__lte=at, ends_at__gt=at
    ):
        if covers(parse_matchers(silence.matchers), alert_subject):
            return silence
    return None


def open_alert(
    rule: AlertRule,
    fingerprint: str,
    labels: Mapping[str, str],
    value: float | None,
    annotations: Mapping[str, str],
    started_at=None,
    actor: str = SYSTEM_ACTOR,
    is_test: bool = False,
) -> tuple[Alert, bool]:
    """Open the alert for this rule and label set, or return the one already open.

    Returns (alert, created). The database refuses a second open alert for the same
    fingerprint, so two workers racing here end with one alert.
    """
    existing = (
        Alert.objects.filter(organization_id=rule.organization_id, fingerprint=fingerprint)
        .exclude(state=Alert.State.RESOLVED)
        .first()
    )
    if existing is not None:
        return existing, False
    silence = active_silence(rule, labels)
    alert = Alert(
        organization_id=rule.organization_id,
        rule=rule,
        rule_key=rule.key,
        service_id=rule.service_id,
        fingerprint=fingerprint,
        severity=rule.severity,
        value=value,
        labels=dict(labels),
        annotations=dict(annotations),
        started_at=started_at or timezone.now(),
        trace_id=tracing.current_trace_id() or "",
        span_id=tracing.current_span_id() or "",
        audit=audit_tags(rule, actor),
        actor=actor,
        is_test=is_test,
        silenced_by=silence,
    )
    try:
        with transaction.atomic():
            alert.save()
            AlertEvent.objects.create(
                alert=alert,
                kind=AlertEvent.Kind.OPENED,
                actor=actor,
                trace_id=alert.trace_id,
                note="test alert" if is_test else "",
            )
            if silence is not None:
                AlertEvent.objects.create(
                    alert=alert,
                    kind=AlertEvent.Kind.SILENCED,
                    actor=actor,
                    trace_id=alert.trace_id,
                    note=f"silence {silence.pk}: {silence.comment}",
                )
    except IntegrityError:
        winner = (
            Alert.objects.filter(organization_id=rule.organization_id, fingerprint=fingerprint)
            .exclude(state=Alert.State.RESOLVED)
            .first()
        )
        if winner is None:
            raise
        return winner, False
    _send_after_commit(signals.alert_opened, alert, actor)
    return alert, True


@transaction.atomic
def acknowledge(alert: Alert, user=None, note: str = "", actor: str | None = None) -> bool:
    """Acknowledge a firing alert; False when it was not firing (nothing changes).

    A person acknowledges as `user`; anything else (an API token, a signed link)
    names itself with `actor`, e.g. "token:12".
    """
    if actor is None:
        if user is None:
            raise ValueError("acknowledge() needs a user or an actor")
        actor = f"user:{user.pk}"
    changed = Alert.objects.filter(pk=alert.pk, state=Alert.State.FIRING).update(
        state=Alert.State.ACKNOWLEDGED, acknowledged_at=timezone.now(), acknowledged_by=user
    )
    if not changed:
        return False
    alert.refresh_from_db()
    AlertEvent.objects.create(
        alert=alert,
        kind=AlertEvent.Kind.ACKNOWLEDGED,
        actor=actor,
        trace_id=tracing.current_trace_id() or "",
        note=note,
    )
    _send_after_commit(signals.alert_acknowledged, alert, actor)
    return True


@transaction.atomic
def resolve(alert: Alert, actor: str = SYSTEM_ACTOR, note: str = "", at=None) -> bool:
    """Resolve an open alert; False when it was already resolved."""
    changed = (
        Alert.objects.filter(pk=alert.pk)
        .exclude(state=Alert.State.RESOLVED)
        .update(state=Alert.State.RESOLVED, resolved_at=at or timezone.now())
    )
    if not changed:
        return False
    alert.refresh_from_db()
    AlertEvent.objects.create(
        alert=alert,
        kind=AlertEvent.Kind.RESOLVED,
        actor=actor,
        trace_id=tracing.current_trace_id() or "",
        note=note,
    )
    _send_after_commit(signals.alert_resolved, alert, actor)
    return True


def release_ended_silences(now=None) -> int:
    """Alerts whose silence has ended while they still fire become notifiable."""
    now = now or timezone.now()
    ended = Silence.objects.filter(ends_at__lte=now, alerts__isnull=False).distinct()
    return sum(lift_silence(silence, "silence ended") for silence in ended)


def lift_silence(silence: Silence, note: str) -> int:
    """Make the open alerts this silence covers notifiable again (it ended or is deleted)."""
    return sum(
        _unsilence(alert, silence, note)
        for alert in Alert.objects.filter(silenced_by=silence).exclude(state=Alert.State.RESOLVED)
    )


def refresh_silence(silence: Silence, now=None) -> tuple[int, int]:
    """After a silence is saved: release the alerts it no longer covers (matchers
    narrowed, window moved), then silence those it now covers. Returns (lifted, applied)."""
    now = now or timezone.now()
    active = silence.starts_at <= now < silence.ends_at
    matchers = parse_matchers(silence.matchers)
    lifted = 0
    held = (
        Alert.objects.filter(silenced_by=silence)
        .exclude(state=Alert.State.RESOLVED)
        .select_related("service")
    )
    for alert in held:
        if not active or not covers(matchers, _subject(alert)):
            lifted += _unsilence(alert, silence, "silence changed")
    return lifted, apply_silence(silence, now)


def _subject(alert: Alert) -> dict[str, str]:
    return subject(alert.rule_key, alert.service.slug if alert.service_id else None, alert.labels)


def _unsilence(alert: Alert, silence: Silence, note: str) -> bool:
    with transaction.atomic():
        if not Alert.objects.filter(pk=alert.pk, silenced_by=silence).update(silenced_by=None):
            return False
        alert.silenced_by = None
        AlertEvent.objects.create(
            alert=alert,
            kind=AlertEvent.Kind.UNSILENCED,
            actor=SYSTEM_ACTOR,
            trace_id=tracing.current_trace_id() or "",
            note=note,
        )
        _send_after_commit(signals.alert_unsilenced, alert, SYSTEM_ACTOR)
    return True


def apply_silence(silence: Silence, now=None) -> int:
    """Silence the open alerts a new or edited silence covers right now."""
    now = now or timezone.now()
    if not (silence.starts_at <= now < silence.ends_at):
        return 0
    matchers = parse_matchers(silence.matchers)
    applied = 0
    open_alerts = (
        Alert.objects.filter(organization_id=silence.organization_id, silenced_by__isnull=True)
        .exclude(state=Alert.State.RESOLVED)
        .select_related("service")
    )
    for alert in open_alerts:
        if not covers(matchers, _subject(alert)):
            continue
        with transaction.atomic():
            if Alert.objects.filter(pk=alert.pk, silenced_by__isnull=True).update(
                silenced_by=silence
            ):
                AlertEvent.objects.create(
                    alert=alert,
                    kind=AlertEvent.Kind.SILENCED,
                    actor=SYSTEM_ACTOR,
                    trace_id=tracing.current_trace_id() or "",
                    note=f"silence {silence.pk}: {silence.comment}",
                )
                applied += 1
    return applied


def retire_rule_alerts(rule: AlertRule, note: str) -> int:
    """Resolve the open alerts of a rule that was disabled or deleted: nothing will
    evaluate them again, and an alert nobody can resolve would page forever."""
    return sum(
        resolve(alert, actor=SYSTEM_ACTOR, note=note)
        for alert in Alert.objects.filter(rule=rule).exclude(state=Alert.State.RESOLVED)
    )
