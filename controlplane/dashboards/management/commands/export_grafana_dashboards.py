"""manage.py export_grafana_dashboards [--org SLUG] [--out DIR]

Writes the Grafana dashboards (controlplane/dashboards/) under DIR (default
deploy/grafana/dashboards/): the control plane, SLOs and jobs dashboards, and one per
enabled SLO (slo/<organisation>/<slug>.json). An SLO whose dashboard cannot be built
is named and left out, the others are written, and the command exits with status 1.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from controlplane.catalog.models import Organization
from controlplane.dashboards import export
from controlplane.slo.models import SLO

DEFAULT_OUT = Path(settings.BASE_DIR) / "deploy" / "grafana" / "dashboards"


class Command(BaseCommand):
    help = (
        "Write the Grafana dashboards (control plane, SLOs, jobs, and one per SLO) as "
        "provisioning files."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--org", metavar="SLUG", help="only this organisation's SLOs")
        parser.add_argument(
            "--out",
            metavar="DIR",
            default=str(DEFAULT_OUT),
            help="directory to write into (default: deploy/grafana/dashboards/)",
        )

    def handle(self, *args, org: str | None, out: str, **options) -> None:
        slos = SLO.objects.filter(enabled=True).select_related("organization", "service", "job")
        if org is not None:
            if not Organization.objects.filter(slug=org).exists():
                raise CommandError(f"No organisation with the slug {org!r}: nothing written.")
            slos = slos.filter(organization__slug=org)
        definitions = []
        failed: dict[str, str] = {}
        for slo in slos.order_by("organization__slug", "slug"):
            try:
                definitions.append((slo.organization.slug, slo.definition()))
            except (ValueError, TypeError) as error:  # a row no form would have saved
                failed[f"{slo.organization.slug}/{slo.slug}"] = (
                    f"SLO {slo.organization.slug}/{slo.slug}: {error}"
                )
        result = export.build_all(definitions, timezone.now(), site_url=settings.SITE_URL)
        failed.update(result.failed)

        directory = Path(out)
        try:
            written = export.write(result.dashboards, directory)
        except OSError as error:
            raise CommandError(f"{out}: {error.strerror or error}.") from None

        self.stdout.write(f"{len(written)} dashboards written under {directory}:")
        for path in written:
            self.stdout.write(f"  {path.relative_to(directory)}")
        for name, why in sorted(result.skipped.items()):
            self.stdout.write(f"Left out {name}: {why}.")
        for name in sorted(failed):
            self.stderr.write(f"Not written: {failed[name]}")
        if failed:
            raise CommandError(
                f"{len(failed)} SLO dashboard(s) could not be built; the others were written."
            )
