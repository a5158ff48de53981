"""GET /api/v1/runbooks/: scoped like every endpoint, read-only, searchable."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.pagination import PageNumberPagination

from controlplane.catalog.models import ApiToken

pytestmark = pytest.mark.django_db


@pytest.fixture
def runbooks(org, other_org, make_runbook):
    return {
        "shared": make_runbook("api-5xx", title="Shared 5xx", tags=["api", "availability"]),
        "own": make_runbook("checkout", organization=org, title="Acme checkout", tags=["payments"]),
        "foreign": make_runbook("ledger", organization=other_org, title="Globex ledger"),
    }


def slugs(response) -> list[str]:
    return [item["slug"] for item in response.json()["results"]]


def test_no_token_is_401(api, runbooks):
    response = api().get("/api/v1/runbooks/")

    assert response.status_code == 401
    assert response.json()["detail"]


def test_token_sees_shared_and_its_own_organisations_runbooks(api, read_token, runbooks):
    response = api(read_token).get("/api/v1/runbooks/")

    assert response.status_code == 200
    assert response.json()["count"] == 2
    assert slugs(response) == ["api-5xx", "checkout"]


def test_a_runbook_has_markdown_sanitised_html_and_its_page_url(api, read_token, org, make_runbook):
    make_runbook(
        "checkout",
        organization=org,
        body="## Triage\n\n<script>alert(1)</script>[x](javascript:alert(1))\n",
    )

    body = api(read_token).get("/api/v1/runbooks/checkout/").json()

    assert body["slug"] == "checkout"
    assert body["organization"] == "acme"
    assert body["title"] == "Checkout"
    assert body["summary"] == "What to do about checkout."
    assert body["tags"] == ["api"]
    assert body["owner"] == "platform-sre"
    assert body["reviewed_at"] == "2026-11-27"
    assert body["updated_at"]
    assert body["body"].startswith("## Triage\n\n<script>")
    assert body["html"].startswith('<h2 id="triage">Triage</h2>')
    assert "<script" not in body["html"]
    assert "href" not in body["html"]
    assert body["url"] == "http://testserver/runbooks/checkout/"


def test_shared_runbook_has_no_organisation(api, read_token, runbooks):
    body = api(read_token).get("/api/v1/runbooks/api-5xx/").json()

    assert body["organization"] is None


def test_another_organisations_runbook_is_404_like_a_missing_one(api, read_token, runbooks):
    foreign = api(read_token).get("/api/v1/runbooks/ledger/")
    missing = api(read_token).get("/api/v1/runbooks/nope/")

    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()


def test_the_organisations_own_version_replaces_the_shared_one(
    api, read_token, other_org, org, make_runbook
):
    make_runbook("api-5xx", title="Shared 5xx")
    make_runbook("api-5xx", organization=org, title="Acme 5xx")
    globex_token = ApiToken.issue(other_org, ApiToken.Scope.READ)[1]

    listed = api(read_token).get("/api/v1/runbooks/").json()["results"]

    assert [item["title"] for item in listed] == ["Acme 5xx"]
    assert api(read_token).get("/api/v1/runbooks/api-5xx/").json()["title"] == "Acme 5xx"
    assert api(globex_token).get("/api/v1/runbooks/api-5xx/").json()["title"] == "Shared 5xx"


def test_tag_and_search_filters(api, read_token, runbooks):
    client = api(read_token)

    assert slugs(client.get("/api/v1/runbooks/", {"tag": "payments"})) == ["checkout"]
    assert slugs(client.get("/api/v1/runbooks/", {"tag": "pay"})) == []
    assert slugs(client.get("/api/v1/runbooks/", {"q": "shared 5xx"})) == ["api-5xx"]
    assert slugs(client.get("/api/v1/runbooks/", {"q": "globex"})) == []


def test_list_is_paginated(api, read_token, org, make_runbook, monkeypatch):
    monkeypatch.setattr(PageNumberPagination, "page_size", 2)
    for number in range(3):
        make_runbook(f"page-{number}", organization=org)

    first = api(read_token).get("/api/v1/runbooks/").json()

    assert first["count"] == 3
    assert len(first["results"]) == 2
    assert first["next"].endswith("/api/v1/runbooks/?page=2")


def test_read_token_cannot_write(api, read_token, runbooks):
    response = api(read_token).post("/api/v1/runbooks/", {"slug": "x"}, format="json")

    assert response.status_code == 403


def test_write_token_is_told_the_api_is_read_only(api, write_token, runbooks):
    client = api(write_token)

    assert client.post("/api/v1/runbooks/", {"slug": "x"}, format="json").status_code == 405
    assert client.delete("/api/v1/runbooks/checkout/").status_code == 405


def test_session_user_without_organisation_is_refused(client, runbooks):
    client.force_login(get_user_model().objects.create_user("loner"))

    assert client.get("/api/v1/runbooks/").status_code == 403


def test_list_queries_do_not_grow_with_runbooks(
    api, read_token, org, make_runbook, django_assert_max_num_queries
):
    for number in range(20):
        make_runbook(f"page-{number}", organization=org if number % 2 else None)
    client = api(read_token)

    with django_assert_max_num_queries(4):
        response = client.get("/api/v1/runbooks/")

    assert response.json()["count"] == 20


def test_schema_describes_the_runbook_endpoints():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)

    assert "/api/v1/runbooks/" in schema["paths"]
    parameters = {p["name"] for p in schema["paths"]["/api/v1/runbooks/"]["get"]["parameters"]}
    assert {"q", "tag", "page"} <= parameters
    assert "get" in schema["paths"]["/api/v1/runbooks/{slug}/"]
