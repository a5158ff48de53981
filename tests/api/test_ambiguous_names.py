"""Names are unique per organisation: a caller who reads several must say which."""

import pytest

from controlplane.catalog.models import MetricSource, Role, Service

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_org_user(client, member, org, other_org):
    user = member(org, Role.MANAGER, username="both")
    from controlplane.catalog.models import Membership

    Membership.objects.create(organization=other_org, user=user, role=Role.VIEWER)
    client.force_login(user)
    return client


def test_a_slug_in_two_of_my_organisations_asks_which(two_org_user, org, other_org):
    Service.objects.create(organization=org, slug="web", name="Acme web")
    Service.objects.create(organization=other_org, slug="web", name="Globex web")

    ambiguous = two_org_user.get("/api/v1/services/web/")
    chosen = two_org_user.get("/api/v1/services/web/?organization=globex")

    assert ambiguous.status_code == 400
    assert "?organization=" in ambiguous.json()["detail"]
    assert chosen.status_code == 200
    assert chosen.json()["name"] == "Globex web"


def test_source_names_too(two_org_user, org, other_org):
    MetricSource.objects.create(organization=org, name="prom", url="http://a:9090")
    MetricSource.objects.create(organization=other_org, name="prom", url="http://b:9090")

    assert two_org_user.get("/api/v1/sources/prom/").status_code == 400
    assert two_org_user.get("/api/v1/sources/prom/?organization=acme").json()["url"] == (
        "http://a:9090"
    )


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"auth_header": "Bearer 日本"}, "auth_header", "visible ASCII"),
        ({"url": "http://user:secret@prometheus:9090"}, "url", "auth header"),
        ({"url": "http://" + "a" * 64 + ".example:9090"}, "url", "host name is not valid"),
        ({"url": "http://prometheus:0"}, "url", "port"),
    ],
)
def test_sources_that_cannot_be_queried_are_refused_at_save(api, write_token, body, field, message):
    response = api(write_token).post(
        "/api/v1/sources/", {"name": "prom", "url": "http://prometheus:9090", **body}, format="json"
    )

    assert response.status_code == 400, response.content
    assert message in " ".join(response.json()["errors"][field])
    assert not MetricSource.objects.exists()


def test_form_encoded_writes_are_refused(api, write_token):
    response = api(write_token).post(
        "/api/v1/sources/", {"name": "prom", "url": "http://prometheus:9090"}
    )  # multipart, the test client's default

    assert response.status_code == 415
    assert not MetricSource.objects.exists()


def test_a_source_saved_around_validation_is_a_source_error_not_a_crash(org):
    from controlplane.catalog.sources import client_for
    from controlplane.promql.client import SourceUnavailable

    source = MetricSource.objects.create(
        organization=org, name="bad", url="http://prometheus:9090", auth_header="Bearer 日本"
    )
    with pytest.raises(SourceUnavailable, match="cannot be queried as configured"):
        client_for(source).query("up")
