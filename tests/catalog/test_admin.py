"""The admin keeps the organisation walls and the roles."""

import pytest

from controlplane.catalog.models import (
    ApiToken,
    Membership,
    MetricSource,
    Organization,
    Role,
    Service,
)

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
            "url": "http://prom:9090/",
            "timeout": 5,
            "auth_header": "",
        },
    )

    source.refresh_from_db()
    assert (source.url, source.timeout) == ("http://prom:9090/", 5)
    assert source.auth_header == "Bearer s3cr3t-value-1234"
    assert "s3cr3t" not in client.get("/admin/catalog/metricsource/").content.decode()


def test_a_kept_auth_header_does_not_follow_the_url_to_another_host(client, member, org):
    # Whoever may edit the URL must not receive the credential nobody can read back.
    client.force_login(member(org, Role.MANAGER))
    source = MetricSource.objects.create(
        organization=org, name="prom", url="http://prom:9090", auth_header="Bearer s3cr3t"
    )
    form = {"organization": org.pk, "name": "prom", "kind": "prometheus", "timeout": 5}
    page = f"/admin/catalog/metricsource/{source.pk}/change/"

    refused = client.post(page, {**form, "url": "http://collector.example:80", "auth_header": ""})
    assert refused.status_code == 200
    assert "goes only to the host it was saved for" in refused.content.decode()
    source.refresh_from_db()
    assert source.url == "http://prom:9090"

    client.post(page, {**form, "url": "http://prom2:9090", "auth_header": "Bearer n3w"})
    source.refresh_from_db()
    assert (source.url, source.auth_header) == ("http://prom2:9090", "Bearer n3w")


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


@pytest.mark.parametrize("role", [Role.VIEWER, Role.RESPONDER])
def test_source_auth_header_is_masked_on_the_read_only_page(client, member, org, role):
    client.force_login(member(org, role))
    source = MetricSource.objects.create(
        organization=org, name="prom", url="http://prom:9090", auth_header="Bearer s3cr3t-wxyz"
    )

    page = client.get(f"/admin/catalog/metricsource/{source.pk}/change/")

    assert page.status_code == 200
    content = page.content.decode()
    assert "s3cr3t" not in content
    # Not even the last characters: they tell a reader which token is in use.
    assert "wxyz" not in content
    assert "Bearer ****" in content


def test_manager_of_another_organisation_sees_the_header_masked(client, member, org, other_org):
    user = member(other_org, Role.MANAGER)
    Membership.objects.create(organization=org, user=user, role=Role.VIEWER)
    client.force_login(user)
    source = MetricSource.objects.create(
        organization=org, name="prom", url="http://prom:9090", auth_header="Bearer s3cr3t-wxyz"
    )

    content = client.get(f"/admin/catalog/metricsource/{source.pk}/change/").content.decode()

    assert "s3cr3t" not in content
    # Not even the last characters: they tell a reader which token is in use.
    assert "wxyz" not in content
    assert "Bearer ****" in content


def test_manager_sees_the_stored_header_masked_on_the_change_form(client, member, org):
    client.force_login(member(org, Role.MANAGER))
    source = MetricSource.objects.create(
        organization=org, name="prom", url="http://prom:9090", auth_header="Bearer s3cr3t-wxyz"
    )

    content = client.get(f"/admin/catalog/metricsource/{source.pk}/change/").content.decode()

    assert "s3cr3t" not in content
    # Not even the last characters: they tell a reader which token is in use.
    assert "wxyz" not in content
    assert "Bearer ****" in content
    assert 'name="auth_header"' in content


def test_source_list_cannot_be_filtered_by_the_auth_header(client, member, org):
    # A filter on the secret would tell it, one guessed prefix at a time.
    client.force_login(member(org, Role.VIEWER))
    MetricSource.objects.create(
        organization=org, name="prom", url="http://prom:9090", auth_header="Bearer s3cr3t-wxyz"
    )

    for path in (
        "/admin/catalog/metricsource/?auth_header__startswith=Bearer+s",
        "/admin/catalog/metricsource/?auth_header=Bearer+s3cr3t-wxyz",
        "/admin/alerting/alertrule/?source__auth_header__startswith=Bearer+s",
        "/admin/catalog/organization/?metric_sources__auth_header__startswith=B",
    ):
        response = client.get(path)

        assert response.status_code == 400, path


@pytest.fixture
def two_org_manager(member, org, other_org):
    user = member(org, Role.MANAGER, username="both")
    Membership.objects.create(organization=other_org, user=user, role=Role.MANAGER)
    return user


def test_organisation_filter_lists_only_the_users_organisations(
    client, two_org_manager, org, other_org
):
    Organization.objects.create(slug="initech", name="Initech")
    client.force_login(two_org_manager)

    page = client.get("/admin/catalog/service/")

    assert page.status_code == 200
    spec = next(f for f in page.context["cl"].filter_specs if f.title == "organisation")
    assert sorted(label for _, label in spec.lookup_choices) == ["Acme", "Globex"]
    assert "Initech" not in page.content.decode()


def test_organisation_filter_narrows_the_list(client, two_org_manager, org, service, other_org):
    Service.objects.create(organization=other_org, slug="ledger", name="Ledger")
    client.force_login(two_org_manager)

    page = client.get(f"/admin/catalog/service/?organization={other_org.pk}")

    assert [s.name for s in page.context["cl"].result_list] == ["Ledger"]


def test_organisation_filter_ignores_organisations_the_user_cannot_read(
    client, two_org_manager, org, service
):
    hidden = Organization.objects.create(slug="initech", name="Initech")
    Service.objects.create(organization=hidden, slug="tps", name="TPS reports")
    client.force_login(two_org_manager)

    page = client.get(f"/admin/catalog/service/?organization={hidden.pk}")

    assert page.status_code == 200
    assert list(page.context["cl"].result_list) == []


def test_single_organisation_users_get_no_organisation_filter(client, member, org, other_org):
    client.force_login(member(org, Role.MANAGER))

    page = client.get("/admin/catalog/service/")

    assert all(f.title != "organisation" for f in page.context["cl"].filter_specs)


def test_dropdowns_name_the_organisation_for_multi_organisation_users(
    client, two_org_manager, org, other_org
):
    ours = MetricSource.objects.create(organization=org, name="prom", url="http://a:9090")
    theirs = MetricSource.objects.create(organization=other_org, name="prom", url="http://b:9090")
    client.force_login(two_org_manager)

    page = client.get("/admin/alerting/alertrule/add/")

    choices = dict(page.context["adminform"].form.fields["source"].choices)
    assert choices[ours.pk] == "prom (acme)"
    assert choices[theirs.pk] == "prom (globex)"


def test_dropdowns_stay_plain_for_single_organisation_users(client, member, org):
    source = MetricSource.objects.create(organization=org, name="prom", url="http://a:9090")
    client.force_login(member(org, Role.MANAGER))

    page = client.get("/admin/alerting/alertrule/add/")

    assert dict(page.context["adminform"].form.fields["source"].choices)[source.pk] == "prom"
