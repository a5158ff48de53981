from django.core.management.base import BaseCommand, CommandError

from controlplane.catalog.models import ApiToken, Organization


class Command(BaseCommand):
    help = "Issue an API token for an organisation. Prints the token once, nothing else."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--org", required=True, help="organisation slug")
        parser.add_argument("--scope", required=True, choices=ApiToken.Scope.values)
        parser.add_argument("--name", default="")

    def handle(self, *args, org: str, scope: str, name: str, **options) -> None:
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"No organisation with the slug {org!r}.")
        _, plaintext = ApiToken.issue(organization, scope, name)
        self.stdout.write(plaintext)
