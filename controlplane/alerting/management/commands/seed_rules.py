from django.core.management.base import BaseCommand, CommandError

from controlplane.alerting.builtin import seed_rules
from controlplane.catalog.models import Organization


class Command(BaseCommand):
    help = "Re-create the built-in alert rules an organisation is missing (edited ones stay)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("org", help="organisation slug")

    def handle(self, *args, org: str, **options) -> None:
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"No organisation with the slug {org!r}.")
        created, skipped = seed_rules(organization)
        self.stdout.write(f"created: {', '.join(created) or 'none'}")
        if skipped:
            self.stdout.write(
                f"skipped (the organisation has no metric source yet): {', '.join(skipped)}"
            )
