"""An SLO's burn-rate alerts: one alert per tier while both of its windows burn too fast.

They open and resolve through the alerting engine (`alerting.lifecycle`), so they are
silenced, escalated through the SLO's policy and delivered like any other alert; the
outbox hands them to paging in the transaction that opened them.

One incident is one page: while a page alert of an SLO is open, its ticket tiers do not
open (they are inhibited, as Alertmanager's inhibit rules would), and open when the
page has resolved if they still hold. A tier whose alerting was turned off resolves.
A source that cannot answer changes nothing here: missing data is not recovery.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q
from django.urls import NoReverseMatch, reverse

from controlplane.alerting import lifecycle
from controlplane.alerting.fingerprints import fingerprint
from controlplane.alerting.models import Alert, Severity
from controlplane.alerting.templates import humanize_percentage
from controlplane.catalog.actors import Actor
from controlplane.slo import objectives
from controlplane.slo.maths import Tier
from controlplane.slo.models import SLO

RULE_KEY = "slo.burn_rate"
RUNBOOK = "slo-burn-rate"
SEVERITIES = {"page": Severity.CRITICAL, "ticket": Severity.WARNING}


def fingerprint_of(slo: SLO, tier_name: str) -> str:
    return fingerprint(RULE_KEY, {"slo": slo.slug, "burn_tier": tier_name})


def labels_of(slo: SLO, tier: Tier) -> dict[str, str]:
    return {
        **(slo.labels or {}),
        "slo": slo.slug,
        "severity": tier.severity,
        "burn_tier": tier.name,
        "long_window": tier.long_window,
        "short_window": tier.short_window,
    }


def runbook_url(slo: SLO) -> str:
    # RPO and RTO objectives link the runbook that says how they are measured.
    default = objectives.RUNBOOK if slo.kind in objectives.KINDS else RUNBOOK
    slug = slo.runbook.slug if slo.runbook_id else default
    try:
        return reverse("runbooks:page", args=[slug])
    except NoReverseMatch:
        return ""


def annotations_of(slo: SLO, tier: Tier, burn_rates: dict[str, float | None]) -> dict[str, str]:
    long_burn = burn_rates.get(tier.long_window)
    short_burn = burn_rates.get(tier.short_window)
    return {
        "summary": (
            f"SLO {slo.name}: error budget burning {_times(long_burn)} over "
            f"{tier.long_window} and {_times(short_burn)} over {tier.short_window} "
            f"(threshold {tier.factor:.4g}x)"
        ),
        "description": (
            f"At this rate the {humanize_percentage(tier.budget_spent)} of the budget "
            f"that the {tier.name} tier allows is spent within {tier.long_window}. "
            f"Objective {slo.objective:g}% over {slo.get_window_display().lower()}."
        ),
    }


def _times(burn: float | None) -> str:
    return "?" if burn is None else f"{burn:.3g}x"


def reconcile(
    slo: SLO,
    tiers: Iterable[Tier],
    holding: Iterable[Tier],
    burn_rates: dict[str, float | None],
    actor: Actor,
) -> tuple[int, int]:
    """Open the alerts of the tiers that hold and resolve those that do not.

    Call only with a verdict the source gave (not `no_data`); an SLO below its minimum
    events passes no holding tier, so its alerts resolve and none opens. Returns
    (opened, resolved)."""
    tiers = list(tiers)
    enabled = {tier.name for tier in tiers if (slo.page if tier.severity == "page" else slo.ticket)}
    holding_names = {tier.name for tier in holding} & enabled
    open_alerts = {
        alert.labels.get("burn_tier"): alert
        for alert in Alert.objects.filter(slo=slo).exclude(state=Alert.State.RESOLVED)
    }
    opened = resolved = 0
    for tier in tiers:
        alert = open_alerts.get(tier.name)
        if alert is not None and tier.name not in holding_names:
            note = (
                "burn rate back under the threshold"
                if tier.name in enabled
                else f"{tier.severity} alerts turned off for this SLO"
            )
            resolved += lifecycle.resolve(alert, actor=actor, note=note)
            open_alerts.pop(tier.name)
    page_open = any(alert.labels.get("severity") == "page" for alert in open_alerts.values())
    # Pages first: a page opening now inhibits the tickets of this same evaluation.
    for tier in sorted(tiers, key=lambda t: t.severity != "page"):
        if tier.name not in holding_names or tier.name in open_alerts:
            if tier.name in open_alerts and tier.name in holding_names:
                lifecycle.refresh_open(
                    slo.organization_id,
                    fingerprint_of(slo, tier.name),
                    burn_rates.get(tier.long_window) or 0.0,
                    annotations_of(slo, tier, burn_rates),
                    labels_of(slo, tier),
                )
            continue
        if tier.severity == "ticket" and page_open:
            continue
        alert, created = lifecycle.open_for_slo(
            slo,
            fingerprint_of(slo, tier.name),
            rule_key=RULE_KEY,
            severity=SEVERITIES[tier.severity],
            labels=labels_of(slo, tier),
            annotations=annotations_of(slo, tier, burn_rates),
            value=burn_rates.get(tier.long_window),
            runbook_url=runbook_url(slo),
            actor=actor,
        )
        open_alerts[tier.name] = alert
        opened += created
        page_open = page_open or tier.severity == "page"
    return opened, resolved


def retire(slo: SLO, note: str, actor: Actor, severity: str | None = None) -> int:
    """Resolve the SLO's open alerts (of one severity only, if given)."""
    only = Q(labels__severity=severity) if severity else None
    return lifecycle.retire_slo_alerts(slo, note, actor, only=only)
