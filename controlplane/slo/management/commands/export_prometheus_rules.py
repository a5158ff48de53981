"""manage.py export_prometheus_rules [--org SLUG] [--output DIR]

Writes DIR/slo-rules.yml (recording rules and SLOBurnRate alerts of every enabled SLO,
see controlplane/slo/rules.py) and DIR/slo-rules.test.yml beside it, a `promtool test
rules` file proving that each alert fires when both its windows exceed the threshold
and not before:

    promtool check rules slo-rules.yml && promtool test rules slo-rules.test.yml
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse
from django.utils import timezone

from controlplane.catalog.models import Organization
from controlplane.slo import rules
from controlplane.slo.models import SLO

RULE_FILE = "slo-rules.yml"
TEST_FILE = "slo-rules.test.yml"
# The runbook a burn-rate alert links to when its SLO names none.
DEFAULT_RUNBOOK = "slo-burn-rate"


class Command(BaseCommand):
    help = (
        "Write the SLOs' Prometheus recording rules and burn-rate alerts (slo-rules.yml) "
        "and the promtool test file proving the alerts (slo-rules.test.yml)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--org", metavar="SLUG", help="only this organisation's SLOs")
        parser.add_argument(
            "--output", metavar="DIR", default=".", help="directory to write into (default: .)"
        )

    def handle(self, *args, org: str | None, output: str, **options) -> None:
        slos = SLO.objects.filter(enabled=True).select_related("organization", "service", "runbook")
        if org is not None:
            if not Organization.objects.filter(slug=org).exists():
                raise CommandError(f"No organisation with the slug {org!r}.")
            slos = slos.filter(organization__slug=org)
        slos = list(slos.order_by("organization__slug", "slug"))
        definitions = [(slo.organization.slug, slo.definition()) for slo in slos]
        runbook_urls = {(slo.organization.slug, slo.slug): _runbook_url(slo) for slo in slos}
        at = timezone.now()

        directory = Path(output)
        rule_path, test_path = directory / RULE_FILE, directory / TEST_FILE
        groups = rules.rule_groups(definitions, at, runbook_urls=runbook_urls)
        tests = rules.rule_tests(definitions, RULE_FILE, at, runbook_urls=runbook_urls)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            rule_path.write_text(rules.dump(groups, rules.notes(definitions, at)), encoding="utf-8")
            test_path.write_text(
                rules.dump(tests, [f"promtool test rules {TEST_FILE} (beside {RULE_FILE})"]),
                encoding="utf-8",
            )
        except OSError as error:
            raise CommandError(f"{output}: {error.strerror or error}.") from None

        recorded = sum(1 for g in groups["groups"] for r in g["rules"] if "record" in r)
        alerts = sum(1 for g in groups["groups"] for r in g["rules"] if "alert" in r)
        self.stdout.write(
            f"{rule_path}: {len(definitions)} SLOs, {len(groups['groups'])} groups, "
            f"{recorded} recording rules, {alerts} alerts.\n"
            f"{test_path}: {len(tests['tests'])} promtool tests.\n"
            f"Check them with: promtool check rules {rule_path} && "
            f"promtool test rules {test_path}"
        )


def _runbook_url(slo: SLO) -> str:
    slug = slo.runbook.slug if slo.runbook_id else DEFAULT_RUNBOOK
    return f"{settings.SITE_URL}{reverse('runbooks:page', args=[slug])}"
