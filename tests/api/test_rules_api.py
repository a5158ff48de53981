"""Rules as code: the API refuses what the admin refuses, with the same words."""

import json
from datetime import timedelta

import pytest

from controlplane.alerting.models import AlertRule
from controlplane.catalog.models import ApiToken, MetricSource, Service
from runbooks.models import Runbook
from tests.integration.prometheus import prometheus_factory  # noqa: F401
from tests.services import BlackHole, free_port

pytestmark = pytest.mark.django_db

RULE = {
    "key": "checkout.errors",
    "name": "Checkout fails",
    "service": "checkout",
    "severity": "critical",
    "source": "main",
    "expr": "sum(rate(http_server_request_duration_seconds_count[5m]))",
    "op": ">",
    "threshold": 0.5,
    "for": "5m",
    "keep_firing_for": "1m30s",
    "interval": "30s",
    "labels": {"team": "payments"},
    "annotations": {"summary": "{{ $value }} errors per second"},
    "enabled": True,
}


@pytest.fixture(scope="session")
def prometheus(prometheus_factory):  # noqa: F811
    return prometheus_factory({})


@pytest.fixture
def source(org, prometheus) -> MetricSource:
    return MetricSource.objects.create(organization=org, name="main", url=prometheus.url)


@pytest.fixture
def unreachable_source(org) -> MetricSource:
    return MetricSource.objects.create(
        organization=org, name="gone", url=f"http://127.0.0.1:{free_port()}", timeout=1
    )


@pytest.fixture
def writer(api, write_token):
    return api(write_token)


def post(client, body, **changes):
    return client.post("/api/v1/rules/", {**body, **changes}, format="json")


def test_created_rule_reads_back_in_prometheus_words(writer, service, source):
    created = post(writer, RULE)

    assert created.status_code == 201, created.json()
    rule = AlertRule.objects.get(organization=service.organization, key="checkout.errors")
    assert rule.for_duration == timedelta(minutes=5)
    assert rule.keep_firing_for == timedelta(seconds=90)
    assert rule.interval == timedelta(seconds=30)
    assert rule.verification == AlertRule.Verification.VERIFIED
    body = writer.get("/api/v1/rules/checkout.errors/").json()
    expected = {**RULE, "runbook": None}
    assert {k: body[k] for k in expected} == expected
    assert body["state"] == "inactive"
    assert body["last_value"] is None
    assert body["verification"] == "verified"


def test_list_shows_only_the_callers_rules(api, read_token, other_org, org):
    AlertRule.objects.create(organization=other_org, key="theirs", name="T", expr="alerts.firing")

    keys = [r["key"] for r in api(read_token).get("/api/v1/rules/").json()["results"]]

    assert "theirs" not in keys
    assert "source.down" in keys  # every organisation gets the built-in rules


def test_another_organisations_rule_is_404(api, read_token, other_org):
    AlertRule.objects.create(organization=other_org, key="theirs", name="T", expr="alerts.firing")

    assert api(read_token).get("/api/v1/rules/theirs/").status_code == 404


def test_read_token_cannot_write(api, read_token, service, source):
    response = post(api(read_token), RULE)

    assert response.status_code == 403
    assert not AlertRule.objects.filter(key=RULE["key"]).exists()


def test_bad_promql_is_refused_with_prometheus_message(writer, service, source):
    response = post(writer, RULE, expr="sum(rate(http_requests_total[5m])")

    assert response.status_code == 400
    body = response.json()
    assert "expr" in body["errors"]
    message = body["errors"]["expr"][0]
    assert message.startswith("Prometheus refused the expression:")
    assert "parse error" in message  # Prometheus' own words
    assert "expr:" in body["detail"]
    assert not AlertRule.objects.filter(key=RULE["key"]).exists()


def test_unreachable_source_saves_the_rule_unverified(writer, service, unreachable_source):
    response = post(writer, RULE, source="gone")

    assert response.status_code == 201, response.json()
    assert response.json()["verification"] == "unverified"
    rule = AlertRule.objects.get(key=RULE["key"])
    assert rule.verification == AlertRule.Verification.UNVERIFIED
    assert "unreachable" in rule.verification_note


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("for", "-5m", "negative"),
        ("for", "five minutes", "not valid"),
        ("keep_firing_for", 30, "must be text"),
        ("interval", "0s", "at least 1s"),
        ("threshold", "high", "number"),
        ("annotations", {"summary": "{{ $value | nosuchfilter }}"}, "summary"),
        ("labels", {"bad-name": "x"}, "Labels"),
        ("severity", "apocalyptic", "valid choice"),
        ("key", "Has Spaces", "lowercase"),
        ("expr", "x + " * 1100 + "1", "at most 4096 characters"),
        ("labels", {f"l{n}": "x" for n in range(40)}, "at most 32 labels"),
        ("labels", {f"l{n}": "x" * 1000 for n in range(20)}, "8192 characters in all"),
        ("annotations", {f"a{n}": "x" for n in range(20)}, "at most 16 annotations"),
        ("annotations", {f"a{n}": "x" * 8000 for n in range(5)}, "32768 characters in all"),
    ],
)
def test_bad_fields_are_400_naming_the_field(writer, service, source, field, value, words):
    response = post(writer, RULE, **{field: value})

    assert response.status_code == 400, response.json()
    errors = response.json()["errors"]
    assert list(errors) == [field]
    assert words in " ".join(errors[field])
    assert not AlertRule.objects.filter(key=RULE["key"]).exists()


def test_a_source_that_never_answers_holds_a_save_for_the_check_timeout_only(
    writer, service, org, settings
):
    # The source's own timeout is long; saving waits PROMQL_CHECK_SECONDS at most,
    # then keeps the rule, unverified, as if the source were down.
    settings.PROMQL_CHECK_SECONDS = 1
    with BlackHole() as hole:
        MetricSource.objects.create(organization=org, name="stalled", url=hole.url, timeout=60)
        response = post(writer, RULE, source="stalled")

    assert response.status_code == 201, response.json()
    rule = AlertRule.objects.get(key=RULE["key"])
    assert rule.verification == AlertRule.Verification.UNVERIFIED
    assert "within 1 s" in rule.verification_note


def test_a_threshold_without_comparison_is_refused(writer, service, source):
    response = post(writer, RULE, op="")

    assert response.status_code == 400
    assert "op" in response.json()["errors"]


def test_another_organisations_service_is_unknown(writer, other_org, source):
    Service.objects.create(organization=other_org, slug="ledger", name="Ledger")

    response = post(writer, RULE, service="ledger")

    assert response.status_code == 400
    assert "Unknown service 'ledger'" in response.json()["errors"]["service"][0]


def test_another_organisations_source_is_unknown(writer, service, other_org, prometheus):
    MetricSource.objects.create(organization=other_org, name="theirs", url=prometheus.url)

    response = post(writer, RULE, source="theirs")

    assert response.status_code == 400
    assert "Unknown source" in response.json()["errors"]["source"][0]


def test_internal_signal_rule_has_no_source(writer, service):
    body = {**RULE, "expr": "alerts.firing", "source": None, "op": ">", "threshold": 3}
    response = post(writer, body)

    assert response.status_code == 201, response.json()
    assert response.json()["source"] is None
    assert response.json()["verification"] == "internal"


def test_unknown_internal_signal_is_refused(writer, service):
    response = post(writer, {**RULE, "source": None, "expr": "no.such.signal"})

    assert response.status_code == 400
    assert "not one" in response.json()["errors"]["expr"][0]


def test_runbook_resolves_to_the_organisations_own_before_the_shared(writer, org, service, source):
    Runbook.objects.create(slug="checkout", title="Shared", summary="s", body="b", owner="sre")
    own = Runbook.objects.create(
        organization=org, slug="checkout", title="Ours", summary="s", body="b", owner="sre"
    )

    response = post(writer, RULE, runbook="checkout")

    assert response.status_code == 201, response.json()
    assert AlertRule.objects.get(key=RULE["key"]).runbook == own


def test_duplicate_key_is_refused(writer, service, source):
    assert post(writer, RULE).status_code == 201

    response = post(writer, RULE)

    assert response.status_code == 400
    assert "already exists" in response.json()["errors"]["key"][0]


def test_patch_changes_only_what_it_names(writer, service, source):
    post(writer, RULE)

    response = writer.patch("/api/v1/rules/checkout.errors/", {"for": "10m"}, format="json")

    assert response.status_code == 200, response.json()
    rule = AlertRule.objects.get(key=RULE["key"])
    assert rule.for_duration == timedelta(minutes=10)
    assert rule.threshold == 0.5
    assert rule.labels == {"team": "payments"}


def test_patch_with_bad_promql_changes_nothing(writer, service, source):
    post(writer, RULE)

    response = writer.patch("/api/v1/rules/checkout.errors/", {"expr": "up{"}, format="json")

    assert response.status_code == 400
    assert "Prometheus refused" in response.json()["errors"]["expr"][0]
    assert AlertRule.objects.get(key=RULE["key"]).expr == RULE["expr"]


def test_put_resets_what_it_leaves_out(writer, service, source):
    post(writer, RULE)
    body = {k: v for k, v in RULE.items() if k not in ("labels", "keep_firing_for")}

    response = writer.put("/api/v1/rules/checkout.errors/", body, format="json")

    assert response.status_code == 200, response.json()
    rule = AlertRule.objects.get(key=RULE["key"])
    assert rule.labels == {}
    assert rule.keep_firing_for == timedelta(0)


def test_delete_removes_the_rule(writer, service, source):
    post(writer, RULE)

    assert writer.delete("/api/v1/rules/checkout.errors/").status_code == 204
    assert not AlertRule.objects.filter(key=RULE["key"]).exists()


def test_write_token_of_another_organisation_cannot_touch_the_rule(api, org, other_org):
    AlertRule.objects.create(organization=org, key="ours", name="O", expr="alerts.firing")
    theirs = ApiToken.issue(other_org, ApiToken.Scope.WRITE)[1]

    assert api(theirs).delete("/api/v1/rules/ours/").status_code == 404
    assert AlertRule.objects.filter(key="ours").exists()


@pytest.mark.parametrize("field", ["labels", "annotations"])
def test_a_lone_surrogate_in_a_rule_is_refused_naming_its_field(writer, service, field):
    # JSON can spell one; no database stores it as text (a 500 on PostgreSQL, once).
    rule = {"key": "s.rule", "name": "S", "expr": "alerts.firing", field: {"team": "\ud800"}}
    body = json.dumps(rule).encode()  # escaped as \ud800: valid JSON

    response = writer.generic("POST", "/api/v1/rules/", body, content_type="application/json")

    assert response.status_code == 400
    assert "surrogate" in response.json()["errors"][field][0]
    assert not AlertRule.objects.filter(key="s.rule").exists()
