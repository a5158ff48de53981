"""Shared factories: one way to make a rule, a source or an alert in every test."""

from __future__ import annotations

import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.utils import timezone

from controlplane.alerting import lifecycle, outbox
from controlplane.alerting.models import Alert, AlertEvent, AlertRule, RuleEvaluation, Silence
from controlplane.catalog.actors import BEAT
from controlplane.catalog.models import MetricSource, Organization
from controlplane.paging import channels
from controlplane.paging.models import (
    AlertmanagerIntegration,
    EscalationPolicy,
    EscalationStep,
    NotificationChannel,
)
from runbooks.models import Runbook, Via


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
    kwargs.setdefault("actor", BEAT)
    return lifecycle.open_alert(
        rule, fingerprint, labels or {}, value, annotations or {"summary": "s"}, **kwargs
    )[0]


def make_user(username: str, staff: bool = True, **fields: Any) -> AbstractBaseUser:
    """An account with no membership: staff by default, as members are."""
    return get_user_model().objects.create_user(
        username,
        email=f"{username}@example.com",
        password="correct horse battery",
        is_staff=staff,
        **fields,
    )


def make_runbook(organization: Organization | None, slug: str, **fields: Any) -> Runbook:
    """A runbook saved as the admin saves it: checked, with its first revision."""
    values = {
        "title": slug.replace("-", " ").capitalize(),
        "summary": f"What to do about {slug}.",
        "body": f"# {slug}\n\n## Triage\n\nLook at the dashboard.\n",
        "owner": "platform-sre",
        "tags": ["api"],
        "reviewed_at": datetime.date(2026, 11, 27),
        **fields,
    }
    runbook = Runbook(organization=organization, slug=slug, **values)
    runbook.full_clean()
    runbook.save_change(via=Via.ADMIN)
    return runbook


def make_silence(
    organization: Organization,
    comment: str = "maintenance",
    matchers: list[dict] | None = None,
    hours: float = 1,
    **fields: Any,
) -> Silence:
    """A silence active from now for `hours`, matching nothing unless told."""
    now = timezone.now()
    silence = Silence(
        organization=organization,
        comment=comment,
        matchers=matchers or [{"name": "rule", "op": "=", "value": "no.such.rule"}],
        starts_at=fields.pop("starts_at", now),
        ends_at=fields.pop("ends_at", now + datetime.timedelta(hours=hours)),
        **fields,
    )
    silence.full_clean()
    silence.save()
    return silence


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


def make_channel(
    organization: Organization, name: str, kind: str, slack_hosts: tuple[str, ...] = (), **raw
) -> NotificationChannel:
    """A channel whose configuration (`raw`, the API's `config`) is checked as the
    admin and the API check it: `make_channel(org, "ops", "slack", url=receiver.url)`."""
    hosts = slack_hosts or (("127.0.0.1",) if kind == "slack" else ())
    config = channels.parse_config(kind, raw, slack_hosts=hosts)
    return NotificationChannel.objects.create(
        organization=organization, name=name, kind=kind, config=channels.to_json(config)
    )


def make_notification(alert: Alert, state: str = "sent", **fields: Any):
    """A ledger row about `alert` as delivery leaves it: `sent` now by default (sent_at
    set), `dead` with its last error, `pending` untouched; to a webhook named "ops-hook"
    unless `channel_name`/`channel_kind` say otherwise."""
    from controlplane.paging.models import Notification

    now = timezone.now()
    values: dict[str, Any] = {
        "channel_name": "ops-hook",
        "channel_kind": "webhook",
        "event": "trigger",
        "attempts": 0 if state == "pending" else 1,
        "sent_at": now if state == "sent" else None,
        "next_attempt_at": now,
        "trace_id": alert.trace_id,
        **fields,
    }
    return Notification.objects.create(
        organization_id=alert.organization_id, alert=alert, state=state, **values
    )


def make_policy(
    organization: Organization,
    slug: str = "on-call",
    steps: list[tuple[datetime.timedelta | int, list[NotificationChannel]]] = (),
    **fields: Any,
) -> EscalationPolicy:
    """A policy with `steps` of (delay, channels); a delay as int is seconds."""
    policy = EscalationPolicy.objects.create(
        organization=organization, slug=slug, name=fields.pop("name", slug), **fields
    )
    for position, (delay, step_channels) in enumerate(steps):
        if isinstance(delay, int):
            delay = datetime.timedelta(seconds=delay)
        step = EscalationStep.objects.create(policy=policy, position=position, delay=delay)
        step.channels.set(step_channels)
    policy.check_snapshot()
    return policy


def make_integration(
    organization: Organization, slug: str = "prod-am", **fields: Any
) -> tuple[AlertmanagerIntegration, str]:
    """An Alertmanager integration and its key (shown once, as the admin shows it)."""
    integration = AlertmanagerIntegration(organization=organization, slug=slug, **fields)
    key = integration.new_key()
    integration.full_clean()
    integration.save()
    return integration, key


def make_schedule(organization: Organization, slug: str = "primary", **fields: Any):
    """An on-call schedule (a pasted calendar unless `ics_url` is given), checked as the
    admin checks it; not synchronised yet."""
    from controlplane.oncall.models import OnCallSchedule

    fields.setdefault("name", slug.title())
    fields.setdefault("time_zone", "Europe/Paris")
    if not fields.get("ics_url"):
        fields.setdefault("ics_text", ONE_SHIFT_ICS)
    schedule = OnCallSchedule(organization=organization, slug=slug, **fields)
    schedule.full_clean(exclude=["export_key"])
    schedule.save()
    return schedule


# A calendar with one event, naming nobody in particular.
ONE_SHIFT_ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nBEGIN:VEVENT\r\nUID:one\r\n"
    "DTSTART:20260101T000000Z\r\nDTEND:20260102T000000Z\r\nSUMMARY:nobody\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


def make_slo(
    organization: Organization,
    slug: str = "api-availability",
    source: MetricSource | None = None,
    evaluation: dict | None = None,
    **fields: Any,
):
    """An SLO checked by the model's clean() and saved with its evaluation row, without
    asking its source; by default a ratio SLO of 99.9 % over 30 days on the
    organisation's source "prom" (made, pointing nowhere, when it has none).

    `evaluation` sets what the evaluator would have written (status, sli, burn_rates...).
    """
    from controlplane.slo.models import SLO, SLOEvaluation

    if source is None:
        source, _ = MetricSource.objects.get_or_create(
            organization=organization,
            name="prom",
            defaults={"url": "http://prometheus.example:9090", "timeout": 5},
        )
    values: dict[str, Any] = {
        "name": slug.replace("-", " ").capitalize(),
        "kind": SLO.Kind.RATIO,
        "bad": 'http_requests_total{code=~"5.."}',
        "total": "http_requests_total",
        "objective": 99.9,
        **fields,
    }
    slo = SLO(organization=organization, slug=slug, source=source, **values)
    slo.full_clean()
    slo.save()
    SLOEvaluation.objects.update_or_create(slo=slo, defaults=evaluation or {})
    return slo


def make_job(
    organization: Organization,
    slug: str = "payroll-export",
    state: dict | None = None,
    **fields: Any,
):
    """A job monitor checked by the model's clean() and saved with its state row, under
    the organisation's default ping key (made when it has none); by default a payroll
    job on the cron schedule 0 2 * * * in UTC with 15 minutes' grace.

    `state` sets what pings and the overdue check would have written (status,
    last_start, next_expected...).
    """
    from controlplane.jobs.models import JobMonitor, JobMonitorState, PingKey

    if "ping_key" not in fields:
        fields["ping_key"], _ = PingKey.objects.get_or_create(
            organization=organization, name="default"
        )
    values: dict[str, Any] = {
        "name": slug.replace("-", " ").capitalize(),
        "kind": "payroll",
        "schedule_kind": JobMonitor.Schedule.CRON,
        "cron": "0 2 * * *",
        "time_zone": "UTC",
        **fields,
    }
    monitor = JobMonitor(organization=organization, slug=slug, **values)
    monitor.full_clean()
    monitor.save()
    JobMonitorState.objects.update_or_create(monitor=monitor, defaults=state or {})
    return monitor
