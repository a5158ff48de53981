"""Organisation walls and the status codes that keep them."""

import pytest

from controlplane.catalog.models import ApiToken, Role, Service

pytestmark = pytest.mark.django_db


@pytest.fixture
def globex_service(other_org):
    return Service.objects.create(organization=other_org, slug="ledger", name="Ledger")


def test_no_credentials_is_401_with_a_json_reason(api, service):
    response = api().get("/api/v1/services/")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_bad_token_is_401(api, service):
    assert api("cpt_not-a-real-token").get("/api/v1/services/").status_code == 401


def test_token_lists_only_its_organisations_services(api, read_token, service, globex_service):
    response = api(read_token).get("/api/v1/services/")

    assert response.status_code == 200
    body = response.json()
    assert [s["slug"] for s in body["results"]] == ["checkout"]
    assert body["count"] == 1


def test_another_organisations_service_is_404_not_403(api, read_token, globex_service):
    response = api(read_token).get(f"/api/v1/services/{globex_service.slug}/")

    assert response.status_code == 404
    assert response.json() == {"detail": "No Service matches the given query."}


def test_unknown_slug_and_foreign_slug_answer_the_same(api, read_token, globex_service):
    foreign = api(read_token).get("/api/v1/services/ledger/")
    missing = api(read_token).get("/api/v1/services/does-not-exist/")

    assert (foreign.status_code, foreign.json()) == (missing.status_code, missing.json())


def test_read_token_is_refused_a_write_with_403(api, read_token, service):
    response = api(read_token).delete(f"/api/v1/services/{service.slug}/")

    assert response.status_code == 403
    assert "read-only" in response.json()["detail"]


def test_write_token_gets_past_the_permission_check(api, write_token, service):
    # Services are read-only in the API: a write token reaches the view and is told so.
    response = api(write_token).delete(f"/api/v1/services/{service.slug}/")

    assert response.status_code == 405


def test_session_member_reads_own_org_only(client, member, org, service, globex_service):
    client.force_login(member(org, Role.VIEWER))

    response = client.get("/api/v1/services/")

    assert [s["slug"] for s in response.json()["results"]] == ["checkout"]
    assert client.get("/api/v1/services/ledger/").status_code == 404


def test_revoked_token_is_401(api, org, service):
    token, plaintext = ApiToken.issue(org, ApiToken.Scope.READ)
    token.revoke()

    assert api(plaintext).get("/api/v1/services/").status_code == 401


def test_unknown_api_route_is_json_404(api, read_token):
    response = api(read_token).get("/api/v1/nothing-here/")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert "No API endpoint" in response.json()["detail"]


def test_service_detail_shape(api, read_token, service):
    body = api(read_token).get("/api/v1/services/checkout/").json()

    assert body["slug"] == "checkout"
    assert body["organization"] == "acme"
    assert body["team"] == "payments"


def test_list_is_paginated_and_counts_queries(api, read_token, org, django_assert_max_num_queries):
    Service.objects.bulk_create(
        Service(organization=org, slug=f"svc-{i:03}", name=f"Service {i}") for i in range(120)
    )
    client = api(read_token)
    with django_assert_max_num_queries(4):
        body = client.get("/api/v1/services/").json()

    assert body["count"] == 120
    assert len(body["results"]) == 50
    assert body["next"].endswith("page=2")


def test_openapi_schema_lists_the_endpoints(client):
    response = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    assert b"/api/v1/services/{slug}/" in response.content


def test_openapi_schema_builds_without_warnings_and_names_bearer_auth(tmp_path):
    from django.core.management import call_command

    out = tmp_path / "schema.yml"
    call_command("spectacular", "--fail-on-warn", "--file", str(out))

    text = out.read_text()
    assert "bearerToken" in text
    assert "scheme: bearer" in text
