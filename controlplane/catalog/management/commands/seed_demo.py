import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from controlplane.catalog.models import (
    Membership,
    MetricSource,
    Organization,
    Role,
    Service,
)

DEMO_USERNAME = "demo-manager"


class Command(BaseCommand):
    help = "Create the demo organisation, its manager login (printed once) and a service."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--prometheus-url",
            default="",
            help="register this Prometheus as the demo organisation's metric source 'self'",
        )

    @transaction.atomic
    def handle(self, *args, prometheus_url: str = "", **options) -> None:
        organization, _ = Organization.objects.get_or_create(
            slug="demo", defaults={"name": "Demo organisation"}
        )
        Service.objects.get_or_create(
            organization=organization,
            slug="controlplane",
            defaults={
                "name": "Control plane",
                "tier": Service.Tier.CRITICAL,
                "team": "platform-sre",
                "description": "This control plane, observing itself.",
            },
        )
        User = get_user_model()
        user = User.objects.filter(username=DEMO_USERNAME).first()
        if user is None:
            password = secrets.token_urlsafe(12)
            user = User.objects.create_user(DEMO_USERNAME, password=password, is_staff=True)
            self.stdout.write(f"Demo manager login (shown once): {DEMO_USERNAME} / {password}")
        else:
            self.stdout.write(
                f"Demo manager login: {DEMO_USERNAME} (password shown when it was created; "
                f"reset it with `manage.py changepassword {DEMO_USERNAME}`)"
            )
        Membership.objects.update_or_create(
            organization=organization, user=user, defaults={"role": Role.MANAGER}
        )
        # API calls, tokens and ?organization= all name the organisation by its slug.
        self.stdout.write(
            f"Demo organisation: {organization.name} (slug '{organization.slug}'). "
            f"An API token for it: .venv/bin/python manage.py create_api_token "
            f"--org {organization.slug} --scope write --name demo"
        )
        if prometheus_url:
            source, created = MetricSource.objects.update_or_create(
                organization=organization,
                name="self",
                defaults={"url": prometheus_url, "timeout": 5},
            )
            self.stdout.write(
                f"Metric source 'self' -> {source.url}"
                + (" (built-in rules api.5xx and api.latency read it)" if created else "")
            )
