"""manage.py run_retention [--dry-run] [--org SLUG]: remove what is older than its
retention now (controlplane/audit/retention.py), or with --dry-run say what would go.

Without --org: every organisation, then the events of no organisation and of deleted
organisations. One organisation that cannot be purged (a broken audit chain, a bad
override) does not hold the others back; the command then exits with an error naming it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from controlplane.audit import job, policy, retention
from controlplane.catalog.models import Organization

NO_ORGANISATION = "(no organisation)"


def cut_line(owner: str, cut: retention.Cut, verb: str) -> str:
    """'acme  notifications  90 days  before 2025-01-01 03:30 UTC  12 would go'."""
    cutoff = cut.cutoff.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{owner:<20} {cut.category:<14} {cut.days:>6} days  before {cutoff}  {cut.rows:>9,} {verb}"
    )


class Command(BaseCommand):
    help = "Remove what is older than its retention, or with --dry-run say what would go."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Print what would go; remove nothing."
        )
        parser.add_argument("--org", metavar="SLUG", help="Only this organisation.")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=retention.BATCH_SIZE,
            help=f"Rows deleted per transaction (default {retention.BATCH_SIZE}).",
        )

    def handle(self, *args: object, **options: object) -> None:
        slug = options.get("org")
        batch_size = int(options["batch_size"])
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        if slug:
            organization = Organization.objects.filter(slug=slug).first()
            if organization is None:
                raise CommandError(f"no organisation with the slug {slug!r}")
            owners: list[Organization | None] = [organization]
        else:
            owners = [*Organization.objects.order_by("slug"), None]
        now = timezone.now()
        failed = []
        for owner in owners:
            name = owner.slug if owner is not None else NO_ORGANISATION
            try:
                if options["dry_run"]:
                    self._plan(name, owner, now)
                else:
                    self._purge(name, owner, now, batch_size)
            except (retention.ChainBroken, retention.PurgeBusy, policy.PolicyError) as error:
                self.stderr.write(f"{name}: {error}")
                failed.append(name)
        if failed:
            raise CommandError(f"retention failed for {', '.join(failed)}")

    def _plan(self, name: str, owner: Organization | None, now: datetime) -> None:
        for cut in retention.plan(owner, now):
            self.stdout.write(cut_line(name, cut, "would go"))

    def _purge(self, name: str, owner: Organization | None, now: datetime, size: int) -> None:
        days = retention.days_for(owner.pk if owner is not None else None)
        if owner is None:
            removed = retention.purge(None, now, batch_size=size)
        else:
            # A run by hand is a run of the organisation's monitor too: its success
            # resolves audit.job.failure as the nightly job's would.
            removed = job.purge_reported(owner, now, batch_size=size)
        for category, rows in removed.items():
            cutoff = now - timedelta(days=days[category])
            cut = retention.Cut(category, cutoff, rows, days[category])
            self.stdout.write(cut_line(name, cut, "removed"))
