import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from controlplane.catalog.models import Membership, Organization, Role, Service

DEMO_USERNAME = "demo-manager"


class Command(BaseCommand):
    help = "Create the demo organisation, its manager login (printed once) and a service."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
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
