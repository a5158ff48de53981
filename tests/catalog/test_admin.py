"""The admin keeps the organisation walls and the roles."""

import pytest

from controlplane.catalog.models import ApiToken, MetricSource, Role, Service

pytestmark = pytest.mark.django_db


@pytest.fixture
def globex_service(other_org):
    return Service.objects.create(organization=other_org, slug="ledger", name="Ledger")


def test_manager_lists_only_own_organisations_services(
    client, member, org, service, globex_service
):
    client.force_login(member(org, Role.MANAGER))

    page = client.get("/admin/catalog/service/")

    assert page.status_code == 200
    assert b"Checkout" in page.content
    assert b"Ledger" not in page.content


def test_other_organisations_object_is_not_reachable(client, member, org, globex_service):
    client.force_login(member(org, Role.MANAGER))

    page = client.get(f"/admin/catalog/service/{globex_service.pk}/change/")

    # The admin redirects to its index with "doesn't exist" for rows outside the queryset.
    assert page.status_code == 302
    globex_service.refresh_from_db()
    assert globex_service.name == "Ledger"


def test_viewer_can_read_but_not_change(client, member, org, service):
    client.force_login(member(org, Role.VIEWER))

    assert client.get(f"/admin/catalog/service/{service.pk}/change/").status_code == 200
    response = client.post(
        f"/admin/catalog/service/{service.pk}/change/",
        {"organization": org.pk, "slug": "checkout", "name": "Renamed", "tier": 2},
    )
    assert response.status_code == 403
    service.refresh_from_db()
    assert service.name == "Checkout"


def test_manager_cannot_create_in_another_organisation(client, member, org, other_org):
    client.force_login(member(org, Role.MANAGER))

    response = client.post(
        "/admin/catalog/service/add/",
        {"organization": other_org.pk, "slug": "sneaky", "name": "Sneaky", "tier": 2},
    )

    assert response.status_code == 200  # the form comes back with an error
    assert b"Select a valid choice" in response.content
    assert not Service.objects.filter(slug="sneaky").exists()


def test_token_created_in_admin_is_shown_once_and_stored_hashed(client, member, org):
    client.force_login(member(org, Role.MANAGER))

    response = client.post(
        "/admin/catalog/apitoken/add/",
        {"organization": org.pk, "name": "grafana", "scope": "read"},
        follow=True,
    )

    token = ApiToken.objects.get(name="grafana")
    message = next(str(m) for m in response.context["messages"])
    plaintext = message.split("Your new token is ")[1].split(" ")[0]
    assert ApiToken.authenticate(plaintext).pk == token.pk
    assert (
        plaintext not in client.get(f"/admin/catalog/apitoken/{token.pk}/change/").content.decode()
    )


def test_source_auth_header_is_masked_and_kept_when_left_blank(client, member, org):
    client.force_login(member(org, Role.MANAGER))
    source = MetricSource.objects.create(
        organization=org,
        name="prom",
        url="http://prom:9090",
        auth_header="Bearer s3cr3t-value-1234",
    )

    change_page = client.get(f"/admin/catalog/metricsource/{source.pk}/change/").content.decode()
    assert "s3cr3t" not in change_page
    client.post(
        f"/admin/catalog/metricsource/{source.pk}/change/",
        {
            "organization": org.pk,
            "name": "prom",
            "kind": "prometheus",
            "url": "http://prom:9091",
            "timeout": 5,
            "auth_header": "",
        },
    )

    source.refresh_from_db()
    assert source.url == "http://prom:9091"
    assert source.auth_header == "Bearer s3cr3t-value-1234"
    assert "s3cr3t" not in client.get("/admin/catalog/metricsource/").content.decode()


def test_source_with_a_bad_url_is_refused(client, member, org):
    client.force_login(member(org, Role.MANAGER))

    response = client.post(
        "/admin/catalog/metricsource/add/",
        {
            "organization": org.pk,
            "name": "prom",
            "kind": "prometheus",
            "url": "ftp://prom",
            "timeout": 500,
        },
    )

    assert response.status_code == 200
    assert not MetricSource.objects.exists()
    errors = response.context["adminform"].form.errors
    assert "url" in errors
    assert "timeout" in errors
