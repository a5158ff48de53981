"""Shared factories: one way to make a rule, a source or an alert in every test."""

from __future__ import annotations

from typing import Any

from controlplane.alerting import lifecycle, outbox
from controlplane.alerting.models import Alert, AlertEvent, AlertRule, RuleEvaluation
from controlplane.catalog.models import MetricSource, Organization


def make_source(organization: Organization, url: str, name: str = "prom", **fields: Any):
    return MetricSource.objects.create(
        organization=organization, name=name, url=url, **{"timeout": 5, **fields}
    )


def make_rule(
    organization: Organization, key: str = "queue.depth", evaluation: dict | None = None, **fields
) -> AlertRule:
    """A rule; without a source it reads the internal signal `alerts.firing`.

    `evaluation` sets its evaluation state (as the evaluator would have written it).
    """
    defaults: dict[str, Any] = {"name": key, "expr": "alerts.firing"}
    if fields.get("source") is not None:
        defaults.update(expr="queue_depth", op=">", threshold=3)
    rule = AlertRule.objects.create(organization=organization, key=key, **{**defaults, **fields})
    if evaluation:
        RuleEvaluation.objects.filter(rule=rule).update(**evaluation)
        rule.refresh_from_db()
    return rule


def make_alert(
    rule: AlertRule,
    fingerprint: str = "fp-1",
    labels: dict | None = None,
    value: float | None = 5.0,
    annotations: dict | None = None,
    **kwargs: Any,
) -> Alert:
    return lifecycle.open_alert(
        rule, fingerprint, labels or {}, value, annotations or {"summary": "s"}, **kwargs
    )[0]


class RecordingConsumer:
    """An outbox consumer that records what it is handed, as (kind, alert id, actor).

    `fail_on` kinds raise after writing to the event, a write the outbox must undo.
    Calling it drains the outbox first, as a worker would, and returns the record.
    """

    def __init__(self, fail_on: tuple[str, ...] = ()) -> None:
        self.received: list[tuple[str, int, str]] = []
        self.fail_on = fail_on

    def handle(self, event: AlertEvent) -> str:
        if event.kind in self.fail_on:
            AlertEvent.objects.filter(pk=event.pk).update(note="written by a failing consumer")
            raise RuntimeError(f"cannot handle {event.kind}")
        self.received.append((event.kind, event.alert_id, event.actor))
        return f"took {event.kind}"

    def __call__(self) -> list[tuple[str, int, str]]:
        outbox.drain()
        return list(self.received)

    @property
    def seen(self) -> list[tuple[int, str]]:
        """(alert id, kind) of each event handed on, in order."""
        return [(alert_id, kind) for kind, alert_id, _ in self.received]
