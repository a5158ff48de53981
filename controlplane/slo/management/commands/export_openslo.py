"""manage.py export_openslo [--org SLUG] [--output FILE]

The organisation's SLOs as an OpenSLO v1 YAML stream, which import_openslo reads back
to the same SLOs (latency SLIs come back as ratio SLIs: the notes say so).
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from controlplane.catalog.models import Organization
from controlplane.slo import documents, openslo
from controlplane.slo.models import SLO


class Command(BaseCommand):
    help = "Write an organisation's SLOs as OpenSLO v1 YAML (to stdout, or --output FILE)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--org", help="organisation slug (default: the only one)")
        parser.add_argument("--output", metavar="FILE", help="write here instead of stdout")

    def handle(self, *args, org: str | None, output: str | None, **options) -> None:
        organization = _organization(org)
        slos = list(
            SLO.objects.filter(organization=organization)
            .select_related("service", "source", "escalation_policy", "runbook")
            .order_by("slug")
        )
        written = [documents.to_document(slo) for slo in slos]
        bucket_les = {
            slo.slug: slo.bucket_le
            for slo in slos
            if slo.kind == SLO.Kind.LATENCY and slo.bucket_le
        }
        text = openslo.write(written, organization.slug, bucket_les)
        if output:
            try:
                Path(output).write_text(text, encoding="utf-8")
            except OSError as error:
                raise CommandError(f"{output}: {error.strerror or error}.") from None
            self.stderr.write(f"{len(written)} SLOs of {organization.slug} written to {output}.")
        else:
            self.stdout.write(text, ending="")
        for note in openslo.export_notes(written, bucket_les):
            self.stderr.write(f"note: {note}")


def _organization(slug: str | None) -> Organization:
    if slug is not None:
        organization = Organization.objects.filter(slug=slug).first()
        if organization is None:
            raise CommandError(f"No organisation with the slug {slug!r}.")
        return organization
    organizations = list(Organization.objects.order_by("slug")[:2])
    if len(organizations) != 1:
        raise CommandError(
            "Name the organisation with --org: there are "
            + ("none." if not organizations else "several.")
        )
    return organizations[0]
