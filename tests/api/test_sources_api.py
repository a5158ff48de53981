"""Metric sources through the API: walls, the secret header, and the rules that need them."""

import pytest
from django.utils import timezone

from controlplane.alerting.models import AlertRule
from controlplane.catalog import sources
from controlplane.catalog.models import MetricSource

pytestmark = pytest.mark.django_db


@pytest.fixture
def writer(api, write_token):
    return api(write_token)


@pytest.fixture
def source(org) -> MetricSource:
    return MetricSource.objects.create(
        organization=org, name="main", url="http://prometheus:9090", auth_header="Bearer s3cret"
    )


def test_create_and_read_back_without_the_auth_header(writer, org):
    response = writer.post(
        "/api/v1/sources/",
        {
            "name": "main",
            "url": "http://prometheus:9090",
            "timeout": 5,
            "auth_header": "Bearer s3cret",
        },
        format="json",
    )

    assert response.status_code == 201, response.json()
    assert "s3cret" not in response.content.decode()
    assert MetricSource.objects.get(organization=org, name="main").auth_header == "Bearer s3cret"
    body = writer.get("/api/v1/sources/main/").json()
    assert body["timeout"] == 5
    assert body["has_auth_header"] is True
    assert "auth_header" not in body
    assert body["failing_since"] is None
    assert body["last_error"] == ""


def test_list_shows_health_and_only_the_callers_sources(api, read_token, source, other_org):
    MetricSource.objects.create(organization=other_org, name="theirs", url="http://p:9090")
    sources.record_health({source.pk: "unreachable"}, timezone.now())

    results = api(read_token).get("/api/v1/sources/").json()["results"]

    assert [(s["name"], s["last_error"]) for s in results] == [("main", "unreachable")]


def test_another_organisations_source_is_404(api, read_token, other_org):
    MetricSource.objects.create(organization=other_org, name="theirs", url="http://p:9090")

    assert api(read_token).get("/api/v1/sources/theirs/").status_code == 404


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("url", "ftp://prometheus"),
        ("timeout", 0),
        ("timeout", "slow"),
        ("name", "Not A Slug"),
        ("auth_header", "Bearer a\nX-Evil: 1"),
    ],
)
def test_bad_fields_are_400_naming_the_field(writer, org, field, value):
    body = {"name": "main", "url": "http://prometheus:9090", "timeout": 5, field: value}

    response = writer.post("/api/v1/sources/", body, format="json")

    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"]
    assert not MetricSource.objects.filter(organization=org, name="main").exists()


def test_duplicate_name_is_refused(writer, source):
    response = writer.post(
        "/api/v1/sources/", {"name": "main", "url": "http://other:9090"}, format="json"
    )

    assert response.status_code == 400
    assert "already exists" in response.json()["errors"]["name"][0]


def test_patch_keeps_the_auth_header_unless_given(writer, source):
    response = writer.patch("/api/v1/sources/main/", {"timeout": 2.5}, format="json")

    assert response.status_code == 200, response.json()
    source.refresh_from_db()
    assert (source.timeout, source.auth_header) == (2.5, "Bearer s3cret")


def test_read_token_cannot_write(api, read_token, source):
    response = api(read_token).patch("/api/v1/sources/main/", {"timeout": 1}, format="json")

    assert response.status_code == 403
    source.refresh_from_db()
    assert source.timeout == 10.0


def test_put_is_not_offered(writer, source):
    response = writer.put(
        "/api/v1/sources/main/", {"name": "main", "url": "http://p:9090"}, format="json"
    )

    assert response.status_code == 405


def test_deleting_a_source_rules_use_is_409_naming_them(writer, org, source):
    AlertRule.objects.create(organization=org, key="uses.it", name="U", source=source, expr="up")

    response = writer.delete("/api/v1/sources/main/")

    assert response.status_code == 409
    body = response.json()
    assert "uses.it" in body["detail"]
    assert "uses.it" in body["rules"]
    assert MetricSource.objects.filter(pk=source.pk).exists()


def test_deleting_an_unused_source(writer, org, source):
    # The first source of an organisation carries its built-in rules: this is a second one.
    MetricSource.objects.create(organization=org, name="spare", url="http://p:9090")

    assert writer.delete("/api/v1/sources/spare/").status_code == 204
    assert not MetricSource.objects.filter(organization=org, name="spare").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "http://169.254.169.254/latest",
            "169.254.169.254 is a cloud metadata address; set ALLOWED_SOURCE_NETWORKS to allow it.",
        ),
        (
            "http://[fd00:ec2::254]/",
            "fd00:ec2::254 is a cloud metadata address; set ALLOWED_SOURCE_NETWORKS to allow it.",
        ),
        (
            "http://127.1:9090",
            "127.1 is a loopback address; set ALLOWED_SOURCE_NETWORKS to allow it.",
        ),
    ],
)
def test_a_url_on_a_refused_address_is_400(writer, org, settings, url, message):
    settings.ALLOWED_SOURCE_NETWORKS = []

    response = writer.post(
        "/api/v1/sources/", {"name": "main", "url": url, "timeout": 5}, format="json"
    )

    assert response.status_code == 400, response.json()
    assert response.json()["errors"]["url"] == [message]
    assert not MetricSource.objects.filter(organization=org, name="main").exists()


def test_a_private_address_is_a_fine_source(writer, settings):
    settings.ALLOWED_SOURCE_NETWORKS = []

    response = writer.post(
        "/api/v1/sources/", {"name": "main", "url": "http://10.0.0.5:9090"}, format="json"
    )

    assert response.status_code == 201, response.json()


def test_a_kept_auth_header_does_not_follow_a_patched_url_to_another_host(api, write_token, org):
    MetricSource.objects.create(
        organization=org, name="guarded", url="http://prom:9090", auth_header="Bearer s3cr3t"
    )
    client = api(write_token)

    refused = client.patch(
        "/api/v1/sources/guarded/", {"url": "http://collector.example"}, format="json"
    )
    assert refused.status_code == 400
    assert "goes only to the host it was saved for" in " ".join(
        refused.json()["errors"]["auth_header"]
    )
    assert MetricSource.objects.get(name="guarded").url == "http://prom:9090"

    moved = client.patch(
        "/api/v1/sources/guarded/",
        {"url": "http://prom2:9090", "auth_header": "Bearer n3w"},
        format="json",
    )
    assert moved.status_code == 200, moved.json()
    kept_host = client.patch(
        "/api/v1/sources/guarded/", {"url": "http://prom2:9090/prometheus"}, format="json"
    )
    assert kept_host.status_code == 200, kept_host.json()
    source = MetricSource.objects.get(name="guarded")
    assert (source.url, source.auth_header) == ("http://prom2:9090/prometheus", "Bearer n3w")
