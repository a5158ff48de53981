"""Opening, acknowledging and resolving alerts: the only ways an alert changes state.

Each function changes the alert with a compare-and-set update and writes its
timeline through `record()`, in one transaction. The timeline is the outbox
(`alerting.outbox`): other contexts learn of the change from the event, which
stays pending until they have recorded what they did with it, so a crash after
the commit loses nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from controlplane.alerting import outbox
from controlplane.alerting.models import Alert, AlertEvent, AlertRule, Silence
from controlplane.alerting.silences import covers, parse_matchers, subject
from controlplane.audit import recorder
from controlplane.audit.diff import AuditSpec, changes, jsonable
from controlplane.audit.pseudonyms import actor_spec
from controlplane.catalog.actors import BEAT, Actor
from observability import context, tracing


def record(
    alert: Alert,
    kind: str,
    actor: Actor,
    note: str = "",
    at: datetime | None = None,
    details: Mapping[str, Any] | None = None,
) -> AlertEvent:
    """Write one event of an alert's timeline: the only place that does.

    Call it inside the transaction of the change it records, so that the change,
    its event (the outbox entry) and its audit event commit or vanish together.
    """
    event = AlertEvent.objects.create(
        alert=alert,
        kind=kind,
        actor=actor.spec,
        at=at or timezone.now(),
        trace_id=tracing.current_trace_id() or alert.trace_id or "",
        note=note,
        details=dict(details or {}),
    )
    action = audit_action(kind, actor)
    if action is not None:
        recorder.record(
            action,
            organization_id=alert.organization_id,
            object_type=recorder.object_type_of(Alert),
            object_id=alert.pk,
            label=audit_label(alert),
            diff=audit_diff(alert, kind, note, event.details),
            actor=actor,
        )
    outbox.notify_on_commit()
    return event


# The timeline's kinds the audit trail records. An opening is recorded when a person or
# a token made it (a test fire, which pages people as a real alert does); an opening by
# the system is an evaluation or an Alertmanager observing its data: the timeline tells
# it, and the trail's `notification.delivered` events name the alert it paged for.
# Silencing and un-silencing follow from a silence's edit, which the trail records.
AUDITED_KINDS = {
    AlertEvent.Kind.OPENED: "alert.opened",
    AlertEvent.Kind.ACKNOWLEDGED: "alert.acknowledged",
    AlertEvent.Kind.RESOLVED: "alert.resolved",
    AlertEvent.Kind.REAPPLIED: "alert.policy_reapplied",
}
# Notes are free text: long ones are summarised as the trail summarises long fields.
_NOTE = AuditSpec()
FINGERPRINT_SHOWN = 12


def audit_action(kind: str, actor: Actor) -> str | None:
    """The audit action of a timeline event, None when the trail leaves it out."""
    if kind == AlertEvent.Kind.OPENED and actor.kind == "system":
        return None
    return AUDITED_KINDS.get(kind)


def audit_label(alert: Alert) -> str:
    fingerprint = alert.fingerprint
    if len(fingerprint) > FINGERPRINT_SHOWN:
        fingerprint = f"{fingerprint[:FINGERPRINT_SHOWN]}…"
    return f"{alert.rule_key} {fingerprint}"


def audit_diff(alert: Alert, kind: str, note: str, details: Mapping[str, Any]) -> dict[str, Any]:
    """What an audited timeline event changed (pure): the state (or the policy's
    version) from and to, the note, and what the caller said of how (a one-click link's
    notification). Call it after the change, with the alert as it now is."""
    if kind == AlertEvent.Kind.REAPPLIED:
        return changes(
            {"policy_version": details.get("previous_version")},
            {"policy_version": details.get("version")},
            _NOTE,
        ) | _noted(note)
    if kind == AlertEvent.Kind.OPENED:
        opened = {"state": alert.state, "value": details.get("value"), "is_test": alert.is_test}
        return changes(None, opened, _NOTE) | _noted(note)
    if kind == AlertEvent.Kind.ACKNOWLEDGED:
        before, after = {"state": Alert.State.FIRING}, {"state": alert.state}
        before["acknowledged_at"], after["acknowledged_at"] = None, alert.acknowledged_at
    else:
        # A resolved alert was acknowledged before if it ever was: nothing un-acknowledges.
        was = Alert.State.ACKNOWLEDGED if alert.acknowledged_at else Alert.State.FIRING
        before, after = {"state": was}, {"state": alert.state}
        before["resolved_at"], after["resolved_at"] = None, alert.resolved_at
    how = {name: jsonable(value) for name, value in details.items()}
    return how | changes(before, after, _NOTE) | _noted(note)


def _noted(note: str) -> dict[str, Any]:
    return {"note": changes(None, {"note": note}, _NOTE)["note"]["to"]} if note else {}


def audit_tags(rule: AlertRule, actor: Actor) -> dict[str, str | None]:
    ids = context.current()
    return {
        "organization": str(rule.organization_id),
        "service": rule.service.slug if rule.service_id else None,
        "rule": rule.key,
        "actor": actor_spec(actor),
        "request_id": ids.request_id,
        "user_id": ids.user_id,
    }


def active_silence(rule: AlertRule, labels: Mapping[str, str], at=None) -> Silence | None:
    service = rule.service.slug if rule.service_id else None
    return _silence_covering(rule.organization_id, rule.key, service, labels, at)


def _silence_covering(
    organization_id: int, rule_key: str, service: str | None, labels: Mapping[str, str], at=None
) -> Silence | None:
    at = at or timezone.now()
    alert_subject = subject(rule_key, service, labels)
    for silence in Silence.objects.filter(
        organization_id=organization_id, starts_at__lte=at, ends_at__gt=at
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
    *,
    actor: Actor,
    is_test: bool = False,
) -> tuple[Alert, bool]:
    """Open the alert for this rule and label set, or return the one already open.

    Returns (alert, created). The database refuses a second open alert for the same
    fingerprint, so two workers racing here end with one alert.
    """
    existing = _open_alert_of(rule.organization_id, fingerprint)
    if existing is not None:
        return existing, False
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
        actor=actor.spec,
        is_test=is_test,
        silenced_by=active_silence(rule, labels),
    )
    return _insert_opened(
        alert,
        actor,
        note="test alert" if is_test else "",
        details={"value": _json_value(value), "annotations": dict(annotations)},
    )


def _open_alert_of(organization_id: int, fingerprint: str) -> Alert | None:
    return (
        Alert.objects.filter(organization_id=organization_id, fingerprint=fingerprint)
        .exclude(state=Alert.State.RESOLVED)
        .first()
    )


def _insert_opened(
    alert: Alert, actor: Actor, note: str, details: Mapping[str, Any]
) -> tuple[Alert, bool]:
    """Save a new open alert with its opening (and silencing) events, or return the one a
    racing writer opened first: the database refuses a second open alert per fingerprint."""
    silence = alert.silenced_by
    try:
        with transaction.atomic():
            alert.save()
            record(alert, AlertEvent.Kind.OPENED, actor, note=note, details=details)
            if silence is not None:
                record(
                    alert,
                    AlertEvent.Kind.SILENCED,
                    actor,
                    f"silence {silence.pk}: {silence.comment}",
                )
    except IntegrityError:
        winner = _open_alert_of(alert.organization_id, alert.fingerprint)
        if winner is None:
            raise
        return winner, False
    return alert, True


def open_from_alertmanager(
    integration: Any,
    fingerprint: str,
    *,
    rule_key: str,
    severity: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    runbook_url: str,
    started_at: datetime,
    details: Mapping[str, Any],
    actor: Actor,
) -> tuple[Alert, bool]:
    """Open the alert an Alertmanager integration (paging.AlertmanagerIntegration)
    reports, or return the one already open: as `open_alert`, with the integration in
    the place of a rule. Returns (alert, created)."""
    existing = _open_alert_of(integration.organization_id, fingerprint)
    if existing is not None:
        return existing, False
    service = integration.service.slug if integration.service_id else None
    ids = context.current()
    alert = Alert(
        organization_id=integration.organization_id,
        alertmanager=integration,
        rule_key=rule_key,
        service_id=integration.service_id,
        fingerprint=fingerprint,
        severity=severity,
        labels=dict(labels),
        annotations=dict(annotations),
        runbook_url=runbook_url,
        started_at=started_at,
        trace_id=tracing.current_trace_id() or "",
        span_id=tracing.current_span_id() or "",
        audit={
            "organization": str(integration.organization_id),
            "service": service,
            "rule": rule_key,
            "alertmanager": integration.slug,
            "actor": actor_spec(actor),
            "request_id": ids.request_id,
            "user_id": ids.user_id,
        },
        actor=actor.spec,
        silenced_by=_silence_covering(integration.organization_id, rule_key, service, labels),
    )
    return _insert_opened(
        alert,
        actor,
        note=f"from Alertmanager ({integration.slug})",
        details={"value": None, "annotations": dict(annotations), "alertmanager": dict(details)},
    )


def open_for_slo(
    slo: Any,
    fingerprint: str,
    *,
    rule_key: str,
    severity: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    value: float | None,
    runbook_url: str,
    actor: Actor,
) -> tuple[Alert, bool]:
    """Open the alert of an SLO's burn-rate tier (slo.alerts), or return the one already
    open: as `open_alert`, with the SLO in the place of a rule. Returns (alert, created)."""
    existing = _open_alert_of(slo.organization_id, fingerprint)
    if existing is not None:
        return existing, False
    service = slo.service.slug if slo.service_id else None
    ids = context.current()
    alert = Alert(
        organization_id=slo.organization_id,
        slo=slo,
        rule_key=rule_key,
        service_id=slo.service_id,
        fingerprint=fingerprint,
        severity=severity,
        value=value,
        labels=dict(labels),
        annotations=dict(annotations),
        runbook_url=runbook_url,
        trace_id=tracing.current_trace_id() or "",
        span_id=tracing.current_span_id() or "",
        audit={
            "organization": str(slo.organization_id),
            "service": service,
            "rule": rule_key,
            "slo": slo.slug,
            "actor": actor_spec(actor),
            "request_id": ids.request_id,
            "user_id": ids.user_id,
        },
        actor=actor.spec,
        silenced_by=_silence_covering(slo.organization_id, rule_key, service, labels),
    )
    return _insert_opened(
        alert,
        actor,
        note=f"SLO {slo.slug}",
        details={"value": _json_value(value), "annotations": dict(annotations)},
    )


def refresh_from_alertmanager(
    alert_id: int,
    *,
    rule_key: str,
    severity: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    runbook_url: str,
) -> int:
    """Carry what Alertmanager now says of an open alert (its annotations re-rendered, a
    label changed) to it. Not a state change, so no event, as `refresh_open`."""
    return (
        Alert.objects.filter(pk=alert_id)
        .exclude(state=Alert.State.RESOLVED)
        .update(
            rule_key=rule_key,
            severity=severity,
            labels=dict(labels),
            annotations=dict(annotations),
            runbook_url=runbook_url,
        )
    )


def _json_value(value: float | None) -> float | str | None:
    from controlplane.promql.values import to_json

    return None if value is None else to_json(value)


@transaction.atomic
def acknowledge(
    alert: Alert, actor: Actor, note: str = "", *, details: Mapping[str, Any] | None = None
) -> bool:
    """Acknowledge a firing alert; False when it was not firing (nothing changes).

    A person acknowledges as `Actor.user(u)` (the alert then names them as its
    acknowledger); a token or a signed link names itself. `details` say how, on the
    timeline and in the audit trail (a one-click link's notification).
    """
    changed = Alert.objects.filter(pk=alert.pk, state=Alert.State.FIRING).update(
        state=Alert.State.ACKNOWLEDGED,
        acknowledged_at=timezone.now(),
        acknowledged_by_id=actor.user_id,
    )
    if not changed:
        return False
    alert.refresh_from_db()
    record(alert, AlertEvent.Kind.ACKNOWLEDGED, actor, note, details=details)
    return True


@transaction.atomic
def resolve(
    alert: Alert,
    *,
    actor: Actor,
    note: str = "",
    at=None,
    details: Mapping[str, Any] | None = None,
) -> bool:
    """Resolve an open alert; False when it was already resolved. `details` as for
    `acknowledge`."""
    at = at or timezone.now()
    changed = (
        Alert.objects.filter(pk=alert.pk)
        .exclude(state=Alert.State.RESOLVED)
        .update(state=Alert.State.RESOLVED, resolved_at=at)
    )
    if not changed:
        return False
    alert.refresh_from_db()
    record(alert, AlertEvent.Kind.RESOLVED, actor, note, details=details)
    return True


def policy_reapplied(alert: Alert, actor: Actor, previous: int, current: int) -> AlertEvent:
    """Put on the alert's timeline that its escalation switched from version `previous`
    of its policy to `current`. Paging calls it in the transaction that switched the
    escalation (paging/incident.py); the alert itself does not change."""
    return record(
        alert,
        AlertEvent.Kind.REAPPLIED,
        actor,
        f"version {previous} → {current}",
        details={"previous_version": previous, "version": current},
    )


def release_ended_silences(now=None) -> int:
    """Alerts whose silence has ended while they still fire become notifiable."""
    now = now or timezone.now()
    ended = Silence.objects.filter(ends_at__lte=now, alerts__isnull=False).distinct()
    return sum(lift_silence(silence, "silence ended", BEAT) for silence in ended)


def lift_silence(silence: Silence, note: str, actor: Actor) -> int:
    """Make the open alerts this silence covers notifiable again (it ended or is deleted)."""
    return sum(
        _unsilence(alert, silence, note, actor)
        for alert in Alert.objects.filter(silenced_by=silence).exclude(state=Alert.State.RESOLVED)
    )


def refresh_silence(silence: Silence, actor: Actor, now=None) -> tuple[int, int]:
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
            lifted += _unsilence(alert, silence, "silence changed", actor)
    return lifted, apply_silence(silence, actor, now)


def _subject(alert: Alert) -> dict[str, str]:
    return subject(alert.rule_key, alert.service.slug if alert.service_id else None, alert.labels)


def _unsilence(alert: Alert, silence: Silence, note: str, actor: Actor) -> bool:
    with transaction.atomic():
        if not Alert.objects.filter(pk=alert.pk, silenced_by=silence).update(silenced_by=None):
            return False
        alert.silenced_by = None
        record(alert, AlertEvent.Kind.UNSILENCED, actor, note)
    return True


def apply_silence(silence: Silence, actor: Actor, now=None) -> int:
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
                record(
                    alert,
                    AlertEvent.Kind.SILENCED,
                    actor,
                    f"silence {silence.pk}: {silence.comment}",
                )
                applied += 1
    return applied


def retire_rule_alerts(rule: AlertRule, note: str, actor: Actor) -> int:
    """Resolve the open alerts of a rule that was disabled or deleted: nothing will
    evaluate them again, and an alert nobody can resolve would page forever."""
    return sum(
        resolve(alert, actor=actor, note=note)
        for alert in Alert.objects.filter(rule=rule).exclude(state=Alert.State.RESOLVED)
    )


def retire_slo_alerts(slo: Any, note: str, actor: Actor, only: Any = None) -> int:
    """Resolve the open alerts of an SLO disabled, deleted or whose alerting was turned
    off (`only`: a queryset filter narrowing them): nothing would resolve them later."""
    alerts = Alert.objects.filter(slo=slo).exclude(state=Alert.State.RESOLVED)
    if only is not None:
        alerts = alerts.filter(only)
    return sum(resolve(alert, actor=actor, note=note) for alert in alerts)


def retire_alertmanager_alerts(integration: Any, note: str, actor: Actor) -> int:
    """Resolve the open alerts of an Alertmanager integration being deleted: nothing
    could resolve them afterwards."""
    return sum(
        resolve(alert, actor=actor, note=note)
        for alert in Alert.objects.filter(alertmanager=integration).exclude(
            state=Alert.State.RESOLVED
        )
    )


def refresh_open(
    organization_id: int,
    fingerprint: str,
    value: float,
    annotations: Mapping[str, str],
    labels: Mapping[str, str] | None = None,
) -> int:
    """Carry an evaluation's current value and re-rendered annotations (and, after an
    edit of the rule, its labels) to the open alert, as Prometheus re-renders at every
    evaluation. Not a state change, so no event: the opening value and text stay on
    the timeline."""
    changes: dict[str, Any] = {"value": value, "annotations": dict(annotations)}
    if labels is not None:
        changes["labels"] = dict(labels)
    return (
        Alert.objects.filter(organization_id=organization_id, fingerprint=fingerprint)
        .exclude(state=Alert.State.RESOLVED)
        .update(**changes)
    )
