from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from controlplane.catalog.models import Organization


class Command(BaseCommand):
    help = "Create an organisation (or update its name). Prints its slug."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)

    def handle(self, *args, slug: str, name: str, **options) -> None:
        organization = Organization.objects.filter(slug=slug).first() or Organization(slug=slug)
        organization.name = name
        try:
            organization.full_clean()
        except ValidationError as error:
            raise CommandError(
                "; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())
            ) from None
        organization.save()
        self.stdout.write(organization.slug)
