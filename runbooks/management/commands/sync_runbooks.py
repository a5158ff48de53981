from __future__ import annotations

from pathlib import Path

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError

from controlplane.catalog.models import Organization
from runbooks import sync
from runbooks.sync import Outcome


def default_directory() -> Path:
    return Path(apps.get_app_config("runbooks").path) / "pages"


class Command(BaseCommand):
    help = (
        "Load runbooks/pages/*.md into runbooks (shared by every organisation, or into one "
        "with --org). Safe to run on every deploy: unchanged files write nothing."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--path",
            type=Path,
            default=default_directory(),
            help="Directory of .md files (default: %(default)s)",
        )
        parser.add_argument(
            "--org",
            metavar="SLUG",
            help="Load into this organisation instead of as shared runbooks.",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Let the file win over a runbook edited in the admin since the "
            "last sync. The admin version stays in the runbook's history.",
        )

    def handle(self, *args, path: Path, org: str | None, force: bool, **options) -> None:
        if not path.is_dir():
            raise CommandError(f"{path} is not a directory of runbook files")
        organization = None
        if org:
            organization = Organization.objects.filter(slug=org).first()
            if organization is None:
                raise CommandError(f"No organisation with the slug {org!r}.")

        loaded, errors = sync.read_directory(path)
        if errors:
            for line in errors:
                self.stderr.write(line)
            raise CommandError(
                f"{len(errors)} runbook file(s) could not be loaded; nothing was changed."
            )

        report = sync.apply(loaded, organization, force)

        for slug in report.slugs(Outcome.CONFLICT):
            self.stderr.write(
                self.style.WARNING(
                    f"conflict: {slug} was edited in the admin and its file changed since "
                    "the last sync; kept the admin version. Copy the edit into the file, or "
                    "run with --force to let the file win."
                )
            )
        for slug in report.slugs(Outcome.FORCED):
            self.stdout.write(f"forced: {slug} replaced its admin edit with the file")
        for slug in report.slugs(Outcome.KEPT_EDIT):
            self.stdout.write(f"kept: {slug} has an admin edit and an unchanged file")
        for slug in report.without_file:
            self.stdout.write(f"no file: {slug} was loaded from a file that is gone; left alone")

        where = f"organisation {organization.slug}" if organization else "shared"
        unchanged = report.count(Outcome.UNCHANGED) + report.count(Outcome.KEPT_EDIT)
        updated = report.count(Outcome.UPDATED) + report.count(Outcome.FORCED)
        self.stdout.write(
            f"runbooks ({where}): {report.count(Outcome.CREATED)} created, {updated} updated, "
            f"{unchanged} unchanged, {report.count(Outcome.CONFLICT)} conflict(s)"
        )
