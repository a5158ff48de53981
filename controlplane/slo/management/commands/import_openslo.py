"""manage.py import_openslo FILE... --org SLUG [--source NAME] [--dry-run]

All or nothing: every file is read and every SLO checked (as the admin checks it, its
queries against the source) before one transaction saves them; an error anywhere
imports nothing. An SLO whose slug exists is updated, unless nothing would change.
"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError, transaction

from controlplane.catalog.actors import Actor
from controlplane.catalog.models import MetricSource, Organization
from controlplane.slo import documents, editing, openslo
from controlplane.slo.models import SLO

ACTOR = Actor.system("import_openslo")


class Command(BaseCommand):
    help = (
        "Import OpenSLO v1 SLO and SLI documents into an organisation: creates or updates "
        "the SLOs by slug (metadata.name), all or nothing, and lists what was ignored."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("files", nargs="+", metavar="FILE", help="OpenSLO v1 YAML files")
        parser.add_argument("--org", required=True, help="organisation slug")
        parser.add_argument(
            "--source",
            help="the source of the SLOs whose queries name no metricSourceRef "
            "(default: the organisation's only source)",
        )
        parser.add_argument("--dry-run", action="store_true", help="check everything, save nothing")

    def handle(self, *args, files: list[str], org: str, source: str | None, **options) -> None:
        dry_run = options["dry_run"]
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"No organisation with the slug {org!r}.")
        try:
            reading = openslo.read_all([(path, _text(path)) for path in files])
        except openslo.OpenSLOError as error:
            raise CommandError(f"Nothing imported. {error}") from None

        default_source = _default_source(organization, source, reading)
        checked: list[tuple[SLO, SLO | None]] = []
        errors: list[str] = []
        notes = list(reading.notes)
        for converted in reading.slos:
            document = {"source": default_source, **converted.document}
            current = SLO.objects.filter(organization=organization, slug=converted.slug).first()
            try:
                # An update keeps what the files do not say (min events, paging, runbook:
                # OpenSLO has no field for them unless our annotations carry them).
                slo = documents.apply(
                    organization, document, current=current, partial=current is not None
                )
            except ValidationError as error:
                errors.extend(_located(converted, error, default_source))
                continue
            if slo.verification_note:
                notes.append(f"{converted.place}: {slo.verification_note}")
            checked.append((slo, current))
        if errors:
            raise CommandError("Nothing imported.\n" + "\n".join(errors))

        done: dict[str, list[str]] = {"created": [], "updated": [], "unchanged": []}
        try:
            with transaction.atomic():
                for slo, current in checked:
                    if current is not None and documents.same(slo, current):
                        done["unchanged"].append(slo.slug)
                        continue
                    editing.save(slo, ACTOR)
                    done["created" if current is None else "updated"].append(slo.slug)
                if dry_run:
                    transaction.set_rollback(True)
        except IntegrityError as error:
            # Another import or an admin created one of these slugs meanwhile.
            raise CommandError(f"Nothing imported: {error}") from None

        if dry_run:
            self.stdout.write("Dry run: nothing was saved. It would have:")
        for outcome, slugs in done.items():
            self.stdout.write(f"{outcome}: {', '.join(slugs) or 'none'}")
        for note in notes:
            self.stdout.write(f"note: {note}")


def _text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise CommandError(f"Nothing imported. {path}: not UTF-8 text ({error.reason}).") from None
    except OSError as error:
        raise CommandError(f"Nothing imported. {path}: {error.strerror or error}.") from None


def _default_source(
    organization: Organization, name: str | None, reading: openslo.Reading
) -> str | None:
    """The source of the SLOs that name none: --source, else the only one there is."""
    sources = list(
        MetricSource.objects.filter(organization=organization).values_list("name", flat=True)
    )
    known = ", ".join(sources) or "none"
    if name is not None:
        if name not in sources:
            raise CommandError(
                f"Nothing imported: organisation {organization.slug} has no source {name!r} "
                f"(its sources: {known})."
            )
        return name
    if len(sources) == 1:
        return sources[0]
    unnamed = [str(c.place) for c in reading.slos if "source" not in c.document]
    if unnamed:
        raise CommandError(
            f"Nothing imported: these SLOs name no metricSourceRef and organisation "
            f"{organization.slug} has {len(sources) or 'no'} sources ({known}); "
            "name one with --source:\n" + "\n".join(unnamed)
        )
    return None


def _located(
    converted: openslo.Converted, error: ValidationError, default_source: str | None
) -> list[str]:
    """The errors of documents.apply, each at its place in the OpenSLO files."""
    messages = error.message_dict if hasattr(error, "error_dict") else {"": error.messages}
    located = []
    for key, texts in messages.items():
        place = converted.where(key)
        if key == "source" and "source" not in converted.fields:
            where = f"{place} (--source {default_source})"
        else:
            where = str(place)
        located.extend(f"{where}: {text}" for text in texts)
    return located
