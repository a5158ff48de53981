"""An organisation with something of every kind the overview shows, named after a tag so
that another organisation's names can be looked for (and must not be found)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from controlplane.alerting.models import Alert
from controlplane.catalog.models import Organization, Service, SourceHealth
from controlplane.jobs.models import JobRun
from controlplane.oncall.models import Responder, Shift
from tests.factories import (
    make_alert,
    make_job,
    make_notification,
    make_rule,
    make_runbook,
    make_schedule,
    make_slo,
    make_source,
)


def trace(n: int) -> str:
    return f"{n:032x}"


@dataclass
class Holdings:
    organization: Organization
    alerts: dict[str, Alert] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)  # what only this organisation shows
    traces: list[str] = field(default_factory=list)


def build(organization: Organization, tag: str, people: list, now: datetime) -> Holdings:
    """Alerts of each severity (one acknowledged, one a test, one an SLO's), SLOs with
    budgets to sort, a failed and a late job, a covered schedule and one with nobody, a
    notification that gave up and one retrying, a failing source."""
    held = Holdings(organization)
    base = 0x100 if tag == "a" else 0x200
    service = Service.objects.create(
        organization=organization, slug=f"{tag}-shop", name=f"Shop {tag}"
    )
    runbook = make_runbook(organization, f"{tag}-errors")
    critical = make_rule(
        organization, f"{tag}.errors", severity="critical", runbook=runbook, service=service
    )
    warning = make_rule(organization, f"{tag}.latency", severity="warning")
    info = make_rule(organization, f"{tag}.disk", severity="info")
    for key, rule, age, labels in (
        ("old-critical", critical, 50, {"i": "1"}),
        ("new-critical", critical, 10, {"i": "2"}),
        ("warning", warning, 30, {}),
        ("acked-info", info, 40, {}),
        ("test", warning, 60, {"t": "1"}),
    ):
        alert = make_alert(
            rule,
            fingerprint=f"{tag}-{key}",
            labels=labels,
            annotations={"summary": f"{tag} {key} summary"},
            started_at=now - timedelta(minutes=age),
            is_test=key == "test",
        )
        Alert.objects.filter(pk=alert.pk).update(trace_id=trace(base + len(held.alerts)))
        alert.refresh_from_db()
        held.alerts[key] = alert
    Alert.objects.filter(pk=held.alerts["acked-info"].pk).update(
        state=Alert.State.ACKNOWLEDGED, acknowledged_at=now
    )
    held.traces += [a.trace_id for a in held.alerts.values()]

    budgets = {"burning": -0.2, "healthy": 0.8, "halfway": 0.5, "new": None}
    for n, (slug, budget) in enumerate(budgets.items()):
        evaluation = {"status": "pending"}
        if budget is not None:
            evaluation = {
                "status": "exhausted" if budget < 0 else "ok",
                "budget_remaining": budget,
                "burn_rates": {"5m": 2.0, "1h": 14.5 if budget < 0 else 0.5},
                "evaluated_at": now,
                "trace_id": trace(base + 0x10 + n),
            }
            held.traces.append(evaluation["trace_id"])
        make_slo(organization, f"{tag}-{slug}", name=f"{tag} SLO {slug}", evaluation=evaluation)
    slo = organization.slos.get(slug=f"{tag}-burning")
    make_runbook(organization, f"{tag}-slo-burn")
    held.alerts["slo"] = Alert.objects.create(
        organization=organization,
        slo=slo,
        rule_key="slo.burn_rate",
        fingerprint=f"{tag}-slo",
        severity="critical",
        started_at=now - timedelta(minutes=5),
        runbook_url=f"/runbooks/{tag}-slo-burn/",
        trace_id=trace(base + 0x20),
    )
    held.traces.append(trace(base + 0x20))

    make_job(
        organization,
        f"{tag}-payroll",
        name=f"{tag} payroll",
        state={
            "status": "failed",
            "changed_at": now - timedelta(hours=2),
            "trouble_outcome": "failure",
            "trouble_trace_id": trace(base + 0x30),
        },
    )
    late = make_job(
        organization,
        f"{tag}-backup",
        name=f"{tag} backup",
        state={
            "status": "late",
            "changed_at": now - timedelta(hours=3),
            "next_expected": now - timedelta(hours=4),
        },
    )
    JobRun.objects.create(
        monitor=late,
        outcome="success",
        started_at=now - timedelta(days=1),
        trace_id=trace(base + 0x31),
    )
    make_job(organization, f"{tag}-etl", name=f"{tag} etl", state={"status": "up"})
    held.traces += [trace(base + 0x30), trace(base + 0x31)]

    covered = make_schedule(organization, f"{tag}-primary", name=f"{tag} primary")
    make_schedule(organization, f"{tag}-empty", name=f"{tag} empty")
    first, second = (Responder.objects.create(organization=organization, user=p) for p in people)
    Shift.objects.create(
        schedule=covered,
        responder=first,
        start=now - timedelta(hours=1),
        end=now + timedelta(days=1),
    )
    Shift.objects.create(
        schedule=covered,
        responder=second,
        start=now + timedelta(days=1),
        end=now + timedelta(days=2),
    )

    make_notification(
        held.alerts["old-critical"], "dead", channel_name=f"{tag}-hook", last_error="HTTP 404",
        trace_id=trace(base + 0x40),
    )  # fmt: skip
    make_notification(
        held.alerts["warning"], "failed", channel_name=f"{tag}-slack", channel_kind="slack",
        last_error="HTTP 503", trace_id=trace(base + 0x41),
    )  # fmt: skip
    make_notification(held.alerts["warning"], "sent", channel_name=f"{tag}-sent-ok")
    held.traces += [trace(base + 0x40), trace(base + 0x41)]

    source = make_source(organization, "http://prometheus.example:9090", name=f"{tag}-prom-down")
    SourceHealth.objects.update_or_create(
        source=source,
        defaults={"failing_since": now - timedelta(minutes=20), "last_error": f"{tag} refused"},
    )

    held.names = [
        f"{tag}.errors",
        f"{tag} SLO burning",
        f"{tag} payroll",
        f"{tag} primary",
        f"{tag}-hook",
        f"{tag}-prom-down",
        f"Shop {tag}",
    ]
    return held
