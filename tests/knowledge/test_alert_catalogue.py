"""docs/observability/runbooks.md cannot drift from the code: every built-in rule (as the
database holds it after migrations and seeding, and as each data migration froze it) and
every burn-rate tier is documented there with its severity, condition and runbook."""

from __future__ import annotations

import importlib
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from controlplane.alerting import internal_signals
from controlplane.alerting.models import AlertRule
from controlplane.catalog.models import Organization
from controlplane.slo import alerts, maths, objectives
from tests.factories import make_source

CATALOGUE = Path(settings.BASE_DIR) / "docs" / "observability" / "runbooks.md"
RUNBOOK_FILES = Path(settings.BASE_DIR) / "runbooks" / "pages"
# Data migrations that froze a built-in rule's spec for the organisations of their time.
FROZEN = [
    "controlplane.oncall.migrations.0003_calendar_queue_rule",
    "controlplane.audit.migrations.0004_builtin_monitor_and_rule",
    "controlplane.jobs.migrations.0002_check_and_builtin_rule",
]


def sections(text: str) -> dict[str, str]:
    """Level-2 sections by heading text."""
    found: dict[str, str] = {}
    for chunk in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        heading, _, body = chunk.partition("\n")
        found[heading.strip()] = body
    return found


def rows(body: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in body.splitlines()
        if line.startswith("|") and not line.startswith("| ---")
    ]


def fact(body: str, name: str) -> str:
    matching = [row[1] for row in rows(body) if row and row[0] == name]
    assert matching, f"the section has no '{name}' row"
    return matching[0]


def duration(length: timedelta) -> str:
    seconds = int(length.total_seconds())
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


@pytest.fixture(scope="module")
def catalogue() -> dict[str, str]:
    return sections(CATALOGUE.read_text())


def check_rule(catalogue, key, severity, expr, op, threshold, for_duration, runbook):
    assert key in catalogue, f"docs/observability/runbooks.md has no section '## {key}'"
    body = catalogue[key]
    assert f"`{severity}`" == fact(body, "Severity"), f"{key}: documented severity differs"
    condition = fact(body, "Condition")
    if expr in internal_signals.registry:
        assert f"`{expr}`" in condition, f"{key}: the signal {expr} is not named"
    else:
        assert expr in body, f"{key}: the PromQL is not written out as the code has it"
    if op:
        assert f"`{op} {threshold:g}`" in condition, f"{key}: threshold differs"
    else:
        assert "no comparison" in condition, f"{key}: documented with a comparison it lacks"
    if for_duration:
        assert f"for {duration(for_duration)}" in condition, f"{key}: `for` differs"
    else:
        assert "at once" in condition, f"{key}: documented with a `for` it lacks"
    runbook_row = fact(body, "Runbook")
    assert f"(/runbooks/{runbook}/)" in runbook_row
    assert f"(../../runbooks/pages/{runbook}.md)" in runbook_row
    assert (RUNBOOK_FILES / f"{runbook}.md").is_file()
    glance = {row[0]: row[1] for row in rows(catalogue["At a glance"])}
    assert glance.get(f"`{key}`") == severity, f"{key}: the summary table differs"


@pytest.mark.django_db
def test_every_built_in_rule_in_the_database_is_documented(catalogue):
    call_command("sync_runbooks", verbosity=0)
    organization = Organization.objects.create(slug="docs", name="Docs")
    make_source(organization, "http://127.0.0.1:9")  # the PromQL rules come with a source

    rules = list(AlertRule.objects.filter(organization=organization, builtin=True))

    assert {rule.key for rule in rules} >= {
        "api.5xx",
        "api.latency",
        "calendar.queue",
        "audit.job.failure",
        "etl.job.failure",
        "source.down",
    }
    for rule in rules:
        assert rule.runbook is not None, f"{rule.key} links no runbook"
        assert rule.interval == timedelta(minutes=1)
        assert f"every {duration(rule.interval)}" in fact(catalogue[rule.key], "Condition")
        check_rule(
            catalogue,
            rule.key,
            rule.severity,
            rule.expr,
            rule.op,
            rule.threshold,
            rule.for_duration,
            rule.runbook.slug,
        )


@pytest.mark.parametrize("module", FROZEN)
def test_every_rule_a_migration_seeds_is_documented_as_it_seeds_it(catalogue, module):
    migration = importlib.import_module(module)
    rule = migration.RULE
    # The migrations without a RUNBOOK constant link the runbook named after the key.
    runbook = getattr(migration, "RUNBOOK", None) or migration.KEY.replace(".", "-")
    check_rule(
        catalogue,
        migration.KEY,
        rule["severity"],
        rule["expr"],
        rule["op"],
        rule["threshold"],
        rule.get("for_duration"),
        runbook,
    )


def test_no_section_documents_a_rule_that_does_not_exist(catalogue):
    from controlplane.alerting.builtin import BUILTIN_RULES

    known = {spec["key"] for spec in BUILTIN_RULES} | {alerts.RULE_KEY}
    documented = {
        heading for heading in catalogue if re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)+", heading)
    }

    assert documented == known


@pytest.mark.parametrize("days", [30, 28, 7])
def test_every_burn_rate_tier_is_documented_with_its_severity_windows_and_factor(catalogue, days):
    body = catalogue[alerts.RULE_KEY]
    column = {30: 6, 28: 7, 7: 8}[days]
    documented = {row[0]: row for row in rows(body) if row[0] in {t[0] for t in maths.TIER_TABLE}}

    tiers = maths.tiers(timedelta(days=days))

    assert set(documented) == {tier.name for tier in tiers}
    for tier in tiers:
        row = documented[tier.name]
        assert row[1:6] == [
            tier.severity,
            alerts.SEVERITIES[tier.severity],
            tier.long_window,
            tier.short_window,
            f"{tier.budget_spent:.0%}",
        ], f"tier {tier.name}"
        assert row[column] == f"{tier.factor:.3g}", f"tier {tier.name}, {days} days"
    glance = {row[0]: row[1] for row in rows(catalogue["At a glance"])}
    for severity, alert_severity in alerts.SEVERITIES.items():
        kind = "page" if severity == "page" else "ticket"
        assert glance[f"`{alerts.RULE_KEY}` ({kind} tiers)"] == alert_severity
    assert f"(/runbooks/{alerts.RUNBOOK}/)" in fact(body, "Runbook")


def test_the_rpo_and_rto_alerts_are_documented_with_their_defaults_and_runbook(catalogue):
    body = catalogue["RPO and RTO objectives"]
    table = {row[0]: row for row in rows(body)}

    for kind, target in objectives.DEFAULT_TARGETS.items():
        hours = int(target / timedelta(hours=1))
        row = table[f"{kind.upper()} (`{kind}`)"]
        assert row[1] == f"{hours} h"
    assert f"(/runbooks/{objectives.RUNBOOK}/)" in body
    assert f"(../../runbooks/pages/{objectives.RUNBOOK}.md)" in body
    assert f"`{alerts.RULE_KEY}`" in body
