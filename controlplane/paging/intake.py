"""Alerts from Alertmanager, at the edge: an integration's payload carried out.

`receive(integration, body, actor)` reads the payload (`alertmanager.parse`), loads
what we hold for its fingerprints, decides (`alertmanager.decide`) and carries every
action out through alerting.lifecycle, the only way an alert changes, in one
transaction: a payload is applied whole or not at all. An opened alert's `opened` event
goes through the alert outbox like our own alerts', and paging's consumer starts its
escalation on the integration's policy (or the organisation's default).

The integration's `IntegrationHealth` row says when it last received a payload, and
what the last refused one was refused for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.urls import reverse
from django.utils import timezone

from controlplane.alerting import lifecycle
from controlplane.alerting.models import Alert
from controlplane.catalog.actors import Actor
from controlplane.paging import alertmanager
from controlplane.paging.alertmanager import (
    Held,
    Leave,
    Open,
    OpenAlert,
    Payload,
    PayloadError,
    Resolve,
    Shown,
    Update,
)
from controlplane.paging.models import AlertmanagerIntegration, IntegrationHealth
from runbooks.models import Runbook

logger = logging.getLogger(__name__)

LONGEST_ERROR = 300


@dataclass(frozen=True)
class Receipt:
    """What one payload did, as the intake answers it."""

    integration: str
    alerts: int = 0
    opened: int = 0
    updated: int = 0
    resolved: int = 0
    unchanged: int = 0
    truncated_alerts: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "integration": self.integration,
            "alerts": self.alerts,
            "opened": self.opened,
            "updated": self.updated,
            "resolved": self.resolved,
            "unchanged": self.unchanged,
            "truncated_alerts": self.truncated_alerts,
        }


def actor_of(integration: AlertmanagerIntegration) -> Actor:
    """Who changes alerts when an Alertmanager posts with the integration's key."""
    return Actor.system(f"alertmanager/{integration.slug}")


def receive(
    integration: AlertmanagerIntegration,
    body: bytes,
    actor: Actor,
    now: datetime | None = None,
) -> Receipt:
    """Carry out the payload in `body`; raises alertmanager.PayloadError (noted on the
    integration's health) when it is refused, changing nothing."""
    now = now or timezone.now()
    try:
        payload = alertmanager.parse(body)
    except PayloadError as error:
        refused(integration, error, now)
        raise
    with transaction.atomic():
        held = _held(integration, payload)
        runbooks = _runbooks(integration.organization_id, alertmanager.runbook_slugs(payload))
        actions = alertmanager.decide(payload, held, now, runbooks)
        counts = {"opened": 0, "updated": 0, "resolved": 0, "unchanged": 0}
        # In fingerprint order: two requests about the same alerts (an Alertmanager pair)
        # then take their rows in the same order, and never wait on each other in a ring.
        for action in sorted(actions, key=lambda action: action.fingerprint):
            counts[_apply(integration, action, actor)] += 1
        _note(integration.pk, last_received_at=now)
    if payload.truncated_alerts:
        logger.warning(
            "Alertmanager integration %s: the sender left %s alert(s) out (its max_alerts)",
            integration.slug,
            payload.truncated_alerts,
        )
    return Receipt(
        integration=integration.slug,
        alerts=len(payload.alerts),
        truncated_alerts=payload.truncated_alerts,
        **counts,
    )


def refused(integration: AlertmanagerIntegration, error: PayloadError, now: datetime) -> None:
    """Note a refused payload on the integration, for the admin to show."""
    _note(integration.pk, last_refused_at=now, last_error=str(error)[:LONGEST_ERROR])
    logger.warning("Alertmanager integration %s: payload refused: %s", integration.slug, error)


def _held(integration: AlertmanagerIntegration, payload: Payload) -> dict[str, Held]:
    """What we hold for each fingerprint of the payload, in two queries."""
    ours = {
        alertmanager.alert_fingerprint(integration.pk, alert.fingerprint): alert.fingerprint
        for alert in payload.alerts
    }
    if not ours:
        return {}
    alerts = Alert.objects.filter(organization_id=integration.organization_id, fingerprint__in=ours)
    open_alerts = {
        ours[alert.fingerprint]: OpenAlert(
            alert_id=alert.pk,
            started_at=alert.started_at,
            shown=Shown(
                rule_key=alert.rule_key,
                severity=alert.severity,
                labels=alert.labels or {},
                annotations=alert.annotations or {},
                runbook_url=alert.runbook_url,
            ),
        )
        for alert in alerts.exclude(state=Alert.State.RESOLVED)
    }
    resolved_starts = dict(
        alerts.filter(state=Alert.State.RESOLVED)
        .values_list("fingerprint")
        .annotate(latest=Max("started_at"))
        .values_list("fingerprint", "latest")
    )
    return {
        fingerprint: Held(
            open=open_alerts.get(fingerprint), resolved_start=resolved_starts.get(ours_key)
        )
        for ours_key, fingerprint in ours.items()
    }


def _runbooks(organization_id: int, slugs: set[str]) -> dict[str, str]:
    """Of the slugs named, those of the organisation's runbooks or the shared ones: each
    to its page."""
    if not slugs:
        return {}
    found = Runbook.objects.filter(
        Q(organization_id=organization_id) | Q(organization__isnull=True), slug__in=slugs
    ).values_list("slug", flat=True)
    return {slug: reverse("runbooks:page", args=[slug]) for slug in set(found)}


def _apply(integration: AlertmanagerIntegration, action: alertmanager.Action, actor: Actor) -> str:
    """Carry out one action; returns the receipt's count it adds to."""
    if isinstance(action, Open):
        _, created = lifecycle.open_from_alertmanager(
            integration,
            alertmanager.alert_fingerprint(integration.pk, action.fingerprint),
            rule_key=action.shown.rule_key,
            severity=action.shown.severity,
            labels=action.shown.labels,
            annotations=action.shown.annotations,
            runbook_url=action.shown.runbook_url,
            started_at=action.started_at,
            details=action.details,
            actor=actor,
        )
        return "opened" if created else "unchanged"
    if isinstance(action, Update):
        changed = lifecycle.refresh_from_alertmanager(
            action.alert_id,
            rule_key=action.shown.rule_key,
            severity=action.shown.severity,
            labels=action.shown.labels,
            annotations=action.shown.annotations,
            runbook_url=action.shown.runbook_url,
        )
        return "updated" if changed else "unchanged"
    if isinstance(action, Resolve):
        alert = Alert.objects.filter(pk=action.alert_id).first()
        if alert is not None and lifecycle.resolve(
            alert, actor=actor, note="resolved in Alertmanager", at=action.at
        ):
            return "resolved"
        return "unchanged"
    assert isinstance(action, Leave)
    return "unchanged"


def _note(integration_id: int, **fields: object) -> None:
    """Write the integration's health, creating its row the first time."""
    if IntegrationHealth.objects.filter(integration_id=integration_id).update(**fields):
        return
    try:
        with transaction.atomic():
            IntegrationHealth.objects.create(integration_id=integration_id, **fields)
    except IntegrityError:  # a concurrent request created it first
        IntegrationHealth.objects.filter(integration_id=integration_id).update(**fields)
