from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.test import override_settings
from rest_framework.test import APIClient

from controlplane.catalog.models import ApiToken, Membership, Organization, Role, Service


class QuickPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """The production algorithm (pbkdf2_sha256) at one iteration. A hash carries its
    iteration count, so a server or worker the tests start (production settings) still
    verifies these passwords, and upgrades them as it would any old hash."""

    iterations = 1


@pytest.fixture(scope="session", autouse=True)
def _quick_password_hashing() -> Iterator[None]:
    # Each of the production hasher's million iterations is paid for every account the
    # suite creates and every password it checks: seconds apiece on a busy machine,
    # minutes over the suite. What a password may be and how logins are throttled is
    # unchanged; a test that checks the hasher itself sets PASSWORD_HASHERS.
    with override_settings(PASSWORD_HASHERS=[f"{__name__}.QuickPBKDF2PasswordHasher"]):
        yield


@pytest.fixture(scope="session")
def fake_prometheus_server():
    from tests.promql.fake import FakePrometheus

    server = FakePrometheus()
    yield server
    server.close()


@pytest.fixture
def fake(fake_prometheus_server):
    """A Prometheus stand-in on loopback answering what the test says (tests/promql/fake.py)."""
    fake_prometheus_server.reset()
    return fake_prometheus_server


@pytest.fixture
def org(db) -> Organization:
    return Organization.objects.create(slug="acme", name="Acme")


@pytest.fixture
def other_org(db) -> Organization:
    return Organization.objects.create(slug="globex", name="Globex")


@pytest.fixture
def member(db):
    """make a user with a role in an organisation: member(org, "manager")."""

    def make(organization: Organization, role: str = Role.VIEWER, username: str | None = None):
        username = username or f"{role}-{organization.slug}"
        user = get_user_model().objects.create_user(
            username,
            email=f"{username}@example.com",
            password="correct horse battery",
            is_staff=True,
        )
        Membership.objects.create(organization=organization, user=user, role=role)
        return user

    return make


@pytest.fixture
def service(org) -> Service:
    return Service.objects.create(
        organization=org, slug="checkout", name="Checkout", team="payments"
    )


@pytest.fixture
def api():
    """api(token=None) -> an APIClient, authenticated with the token when given."""

    def make(token: str | None = None) -> APIClient:
        client = APIClient()
        if token:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    return make


@pytest.fixture
def read_token(org) -> str:
    return ApiToken.issue(org, ApiToken.Scope.READ, "reader")[1]


@pytest.fixture
def write_token(org) -> str:
    return ApiToken.issue(org, ApiToken.Scope.WRITE, "writer")[1]
