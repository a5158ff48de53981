"""Odd input gets a clear 4xx and changes nothing: never a 500."""

import json

import pytest
from django.db import IntegrityError

from controlplane.alerting import lifecycle
from controlplane.alerting.models import Alert, AlertEvent, AlertRule, RuleEvaluation
from controlplane.api.fields import SampleValueField
from controlplane.api.rules import RuleSerializer
from controlplane.api.sources import SourceSerializer
from controlplane.catalog.actors import BEAT
from controlplane.catalog.models import MetricSource
from runbooks.models import Runbook
from tests.services import require_postgresql

pytestmark = pytest.mark.django_db

INTERNAL_RULE = {"key": "fires", "name": "Fires", "expr": "alerts.firing"}
NEW_SOURCE = {"name": "x", "url": "http://p:9090"}


@pytest.fixture
def writer(api, write_token):
    client = api(write_token)
    client.raise_request_exception = False
    return client


@pytest.fixture
def source(org) -> MetricSource:
    return MetricSource.objects.create(organization=org, name="main", url="http://p:9090")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/runbooks/?q=%00",
        "/api/v1/runbooks/a%00/",
        "/api/v1/rules/a%00/",
        "/api/v1/services/a%00/",
        "/api/v1/sources/a%00/",
        "/api/v1/alerts/?service=%00",
        "/api/v1/alerts/?rule=%00",
        "/api/v1/alerts/?%00=x",
    ],
)
def test_nul_in_the_url_is_a_json_400(writer, path):
    response = writer.get(path)

    assert response.status_code == 400
    assert "NUL" in response.json()["detail"]


def test_nul_in_the_url_of_a_write_changes_nothing(writer, source):
    response = writer.patch("/api/v1/sources/main%00/", {"timeout": 3}, format="json")

    assert response.status_code == 400
    source.refresh_from_db()
    assert source.timeout == 10.0


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/sources/", {**NEW_SOURCE, "auth_header": "Bearer \x00"}, "auth_header"),
        ("/api/v1/sources/", {**NEW_SOURCE, "url": "http://p\x00:9090"}, "url"),
        ("/api/v1/rules/", {**INTERNAL_RULE, "name": "F\x00"}, "name"),
        ("/api/v1/rules/", {**INTERNAL_RULE, "labels": {"team": "a\x00"}}, "labels"),
        ("/api/v1/rules/", {**INTERNAL_RULE, "labels": {"te\x00am": "a"}}, "labels"),
        ("/api/v1/rules/", {**INTERNAL_RULE, "annotations": {"summary": "x\x00"}}, "annotations"),
    ],
)  # fmt: skip
def test_nul_anywhere_in_a_body_is_refused_naming_the_field(writer, org, path, body, field):
    response = writer.post(path, body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["errors"][field] == ["Text cannot contain a NUL character (\\u0000)."]
    assert not MetricSource.objects.filter(organization=org, name="x").exists()
    assert not AlertRule.objects.filter(organization=org, key="fires").exists()


def test_nul_in_an_acknowledgement_note_is_refused(writer, org, service):
    rule = AlertRule.objects.create(organization=org, key="r", name="R", expr="alerts.firing")
    alert = lifecycle.open_alert(rule, "f1", {}, 1.0, {}, actor=BEAT)[0]

    response = writer.post(
        f"/api/v1/alerts/{alert.pk}/acknowledge/", {"note": "on it\x00"}, format="json"
    )

    assert response.status_code == 400
    assert "note" in response.json()["errors"]
    alert.refresh_from_db()
    assert alert.state == Alert.State.FIRING
    assert not AlertEvent.objects.filter(alert=alert, kind="acknowledged").exists()


@pytest.mark.parametrize("method", ["post", "patch"])
def test_unknown_rule_fields_are_refused_naming_them(writer, org, method):
    AlertRule.objects.create(organization=org, **INTERNAL_RULE)
    url = "/api/v1/rules/" if method == "post" else "/api/v1/rules/fires/"
    body = {**INTERNAL_RULE, "key": "other", "op": ">", "thresold": 1, "sevrity": "info"}

    response = getattr(writer, method)(url, body, format="json")

    assert response.status_code == 400, response.content
    assert sorted(response.json()["errors"]) == ["sevrity", "thresold"]
    assert "thresold" in response.json()["detail"]
    assert not AlertRule.objects.filter(organization=org, key="other").exists()


def test_unknown_rule_fields_are_refused_on_put(writer, org):
    AlertRule.objects.create(organization=org, **INTERNAL_RULE)

    response = writer.put("/api/v1/rules/fires/", {**INTERNAL_RULE, "labls": {}}, format="json")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["labls"]


@pytest.mark.parametrize("method", ["post", "patch"])
def test_unknown_source_fields_are_refused_naming_them(writer, source, method):
    url = "/api/v1/sources/" if method == "post" else "/api/v1/sources/main/"
    body = {"name": "main2", "url": "http://p:9090", "timout": 1}

    response = getattr(writer, method)(url, body, format="json")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["timout"]
    assert [s.name for s in MetricSource.objects.all()] == ["main"]


def test_read_back_rule_can_be_put_as_it_is(writer, org):
    # Read-only fields are known ones: sending back what was read is no mistake.
    writer.post("/api/v1/rules/", INTERNAL_RULE, format="json")
    current = writer.get("/api/v1/rules/fires/").json()

    response = writer.put("/api/v1/rules/fires/", {**current, "name": "Renamed"}, format="json")

    assert response.status_code == 200, response.content
    assert AlertRule.objects.get(organization=org, key="fires").name == "Renamed"


@pytest.mark.parametrize("url", ["http://[::1", "http://[::1:9090/", "http://[nothost]/"])
def test_malformed_ipv6_url_is_a_400_on_the_url(writer, source, url):
    response = writer.patch("/api/v1/sources/main/", {"url": url}, format="json")

    assert response.status_code == 400, response.content
    assert "not a valid URL" in response.json()["errors"]["url"][0]
    source.refresh_from_db()
    assert source.url == "http://p:9090"


@pytest.mark.parametrize(
    ("value", "shown"),
    [(float("inf"), "+Inf"), (float("-inf"), "-Inf"), (float("nan"), "NaN"), (0.25, 0.25), (0, 0)],
)
def test_sample_values_are_spelt_as_prometheus_does(value, shown):
    assert SampleValueField().to_representation(value) == shown


# SQLite keeps infinities in float columns but turns NaN into NULL: NaN is tested on
# PostgreSQL, which keeps it.
@pytest.mark.parametrize(
    ("stored", "shown"), [(float("inf"), "+Inf"), (float("-inf"), "-Inf"), (0.25, 0.25)]
)
def test_rule_values_from_a_source_are_rendered_even_when_not_finite(
    api, read_token, org, stored, shown
):
    rule = AlertRule.objects.create(organization=org, **INTERNAL_RULE)
    RuleEvaluation.objects.filter(rule=rule).update(last_value=stored)
    client = api(read_token)

    listed = client.get("/api/v1/rules/")
    one = client.get("/api/v1/rules/fires/")

    assert listed.status_code == one.status_code == 200
    assert one.json()["last_value"] == shown
    assert [r["last_value"] for r in listed.json()["results"] if r["key"] == "fires"] == [shown]


@pytest.mark.parametrize(("stored", "shown"), [(float("inf"), "+Inf"), (1.5, 1.5)])
def test_alert_values_are_rendered_even_when_not_finite(api, read_token, org, stored, shown):
    rule = AlertRule.objects.create(organization=org, **INTERNAL_RULE)
    alert = lifecycle.open_alert(rule, "f1", {}, 1.0, {}, actor=BEAT)[0]
    Alert.objects.filter(pk=alert.pk).update(value=stored)
    client = api(read_token)

    listed = client.get("/api/v1/alerts/")
    one = client.get(f"/api/v1/alerts/{alert.pk}/")

    assert listed.status_code == one.status_code == 200
    assert listed.json()["results"][0]["value"] == shown
    assert one.json()["value"] == shown


def test_nan_values_stored_in_postgresql_are_rendered(api, read_token, org):
    require_postgresql()
    rule = AlertRule.objects.create(organization=org, **INTERNAL_RULE)
    RuleEvaluation.objects.filter(rule=rule).update(last_value=float("nan"))
    alert = lifecycle.open_alert(rule, "f1", {}, float("nan"), {}, actor=BEAT)[0]
    client = api(read_token)

    assert client.get("/api/v1/rules/fires/").json()["last_value"] == "NaN"
    assert client.get(f"/api/v1/alerts/{alert.pk}/").json()["value"] == "NaN"


def test_stored_infinite_threshold_is_rendered(api, read_token, org):
    AlertRule.objects.create(organization=org, **INTERNAL_RULE, op=">", threshold=float("inf"))

    response = api(read_token).get("/api/v1/rules/fires/")

    assert response.status_code == 200
    assert response.json()["threshold"] == "+Inf"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("threshold", "1e999"),
        ("threshold", "NaN"),
        ("threshold", "+Inf"),
        ("threshold", 10**400),
        ("threshold", 1e308),  # written below as the JSON number 1e999
    ],
)
def test_threshold_must_be_a_finite_number(writer, org, field, value):
    body = json.dumps({**INTERNAL_RULE, "op": ">", field: value}).replace("1e+308", "1e999")

    response = writer.post("/api/v1/rules/", body, content_type="application/json")

    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert not AlertRule.objects.filter(organization=org, key="fires").exists()


@pytest.mark.parametrize("timeout", ["1e999", "nan", "-inf", 10**400, 0.01, 121])
def test_source_timeout_must_be_finite_and_in_bounds(writer, source, timeout):
    response = writer.patch("/api/v1/sources/main/", {"timeout": timeout}, format="json")

    assert response.status_code == 400, response.content
    assert "timeout" in response.json()["errors"]
    source.refresh_from_db()
    assert source.timeout == 10.0


@pytest.mark.parametrize("path", ["/api/v1/rules/", "/api/v1/sources/"])
def test_json_nested_beyond_reason_is_a_400(writer, path):
    for body in (b"[" * 100_000, b'{"labels": ' + b'{"a": ' * 40 + b"1" + b"}" * 41):
        response = writer.post(path, body, content_type="application/json")

        assert response.status_code == 400, response.content
        assert "nested" in response.json()["detail"]


def passing_once(check):
    """A duplicate check that passes while validating, then works as before: what
    happens when another request inserts the duplicate between check and insert."""
    calls = []

    def racing(self, obj):
        calls.append(obj)
        if len(calls) > 1:
            check(self, obj)

    return racing


def test_rule_created_concurrently_under_the_same_key_is_a_clear_400(writer, org, monkeypatch):
    AlertRule.objects.create(organization=org, **INTERNAL_RULE)
    monkeypatch.setattr(
        RuleSerializer, "_check_key_is_free", passing_once(RuleSerializer._check_key_is_free)
    )

    response = writer.post("/api/v1/rules/", INTERNAL_RULE, format="json")

    assert response.status_code == 400, response.content
    assert "already exists" in response.json()["errors"]["key"][0]
    assert AlertRule.objects.filter(organization=org, key="fires").count() == 1


def test_source_created_concurrently_under_the_same_name_is_a_clear_400(
    writer, source, monkeypatch
):
    monkeypatch.setattr(
        SourceSerializer, "_check_name_is_free", passing_once(SourceSerializer._check_name_is_free)
    )

    response = writer.post(
        "/api/v1/sources/", {"name": "main", "url": "http://other:9090"}, format="json"
    )

    assert response.status_code == 400, response.content
    assert "already exists" in response.json()["errors"]["name"][0]
    assert MetricSource.objects.get(name="main").url == "http://p:9090"


def test_other_integrity_errors_on_save_are_a_409(writer, source, monkeypatch):
    def fail(self, *args, **kwargs):
        raise IntegrityError("violates foreign key constraint")

    monkeypatch.setattr(MetricSource, "save", fail)

    response = writer.patch("/api/v1/sources/main/", {"timeout": 3}, format="json")

    assert response.status_code == 409
    assert "at the same time" in response.json()["detail"]
    source.refresh_from_db()
    assert source.timeout == 10.0


@pytest.mark.parametrize(
    "path", ["/api/v1/nothing-here/", "/api/v1/rules/x/y/z/", "/api/v2/", "/api/v1/rules/k/zap/"]
)
def test_unknown_api_routes_are_json_404_with_debug_on(api, read_token, settings, path):
    settings.DEBUG = True

    response = api(read_token).get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"].startswith("No API endpoint")


def test_unknown_api_route_post_is_a_404_not_a_csrf_403(client, member, org, settings):
    settings.DEBUG = True
    client.force_login(member(org))

    response = client.post("/api/v1/nothing-here/", {})

    assert response.status_code == 404
    assert response.json()["detail"].startswith("No API endpoint")


def test_missing_trailing_slash_is_named(api, read_token):
    response = api(read_token).get("/api/v1/rules")

    assert response.status_code == 404
    assert "did you mean /api/v1/rules/" in response.json()["detail"]


def test_runbook_search_with_odd_characters_is_fine(api, read_token):
    Runbook.objects.create(slug="a", title="Percent 100%", summary="s", body="b", owner="o")

    response = api(read_token).get("/api/v1/runbooks/?q=100%25%5C_'\"")

    assert response.status_code == 200


@pytest.mark.parametrize("alert_id", ["AAA", "1.5", "99999999999999999999", "-0x1"])
@pytest.mark.parametrize("action", ["", "acknowledge/", "resolve/"])
def test_an_alert_id_that_is_no_number_is_404_not_500(api, write_token, alert_id, action):
    client = api(write_token)
    path = f"/api/v1/alerts/{alert_id}/{action}"

    response = client.post(path, {}, format="json") if action else client.get(path)

    assert response.status_code == 404, response.content
    assert response.json()["detail"].startswith(("No Alert matches", "No API endpoint at"))
