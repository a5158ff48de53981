"""The OpenAPI schema says what the API does: its error answers, the fields it refuses,
the values that may be null."""

from __future__ import annotations

import pytest

from controlplane.catalog.models import ApiToken
from tests.authorization import api_operations, furnish, furnish_shared, lookups, openapi_schema

pytestmark = pytest.mark.django_db

SHARED_ERRORS = {"400", "401", "403", "404"}


def operation(key: str) -> dict:
    method, path = key.split(" ", 1)
    return openapi_schema()["paths"][path][method.lower()]


def component(reference: dict) -> dict:
    return openapi_schema()["components"]["schemas"][reference["$ref"].rsplit("/", 1)[1]]


@pytest.mark.parametrize("key", api_operations())
def test_every_operation_documents_the_errors_every_operation_can_give(key):
    responses = operation(key)["responses"]

    assert SHARED_ERRORS <= set(responses), sorted(responses)
    for code in SHARED_ERRORS:
        body = component(responses[code]["content"]["application/json"]["schema"])
        assert body["required"][0] == "detail"


WITH_BODY = [key for key in api_operations() if "requestBody" in operation(key)]
KINDS = {
    "alerts": "alert",
    "rules": "rule",
    "sources": "source",
    "channels": "channel",
    "escalation-policies": "policy",
    "schedules": "schedule",
    "slos": "slo",
    "jobs": "job",
}


def test_the_operations_with_a_body_are_the_writes():
    assert sorted(WITH_BODY) == sorted(
        key for key in api_operations() if key.split()[0] in {"POST", "PUT", "PATCH"}
    )


# Alertmanager's payload is the exception: newer Alertmanagers add keys, so its two ways
# in accept unknown ones (tests/paging/test_alertmanager_intake.py), and say so.
OPEN_BODIES = {
    "POST /api/v1/integrations/alertmanager/",
    "POST /api/v1/integrations/alertmanager/{key}/",
}


@pytest.mark.parametrize("key", sorted(OPEN_BODIES))
def test_alertmanager_payloads_say_they_accept_unknown_keys(key):
    body = operation(key)["requestBody"]["content"]["application/json"]["schema"]

    assert body["additionalProperties"] is True
    assert body["properties"]["alerts"]["items"]["additionalProperties"] is True


@pytest.mark.parametrize("key", [key for key in WITH_BODY if key not in OPEN_BODIES])
def test_unknown_fields_are_refused_as_the_schema_says(api, org, key):
    method, path = key.split(" ", 1)
    held = furnish(org, "a", furnish_shared())
    collection = path.removeprefix("/api/v1/").split("/")[0]
    url = path.format(**lookups(held.objects[KINDS[collection]])) if "{" in path else path
    client = api(ApiToken.issue(org, ApiToken.Scope.WRITE)[1])
    body = operation(key)["requestBody"]["content"]["application/json"]["schema"]

    response = getattr(client, method.lower())(url, {"no_such_field": 1}, format="json")

    assert component(body)["additionalProperties"] is False
    assert response.status_code == 400, response.content
    assert list(response.json()["errors"]) == ["no_such_field"]


@pytest.mark.parametrize(
    ("schema", "field"),
    [
        ("Alert", "service"),
        ("Alert", "acknowledged_at"),
        ("Alert", "resolved_at"),
        ("Alert", "value"),
        ("Rule", "service"),
        ("Rule", "source"),
        ("Rule", "runbook"),
        ("Rule", "threshold"),
        ("Rule", "last_value"),
        ("Rule", "last_evaluated_at"),
        ("Runbook", "organization"),
        ("Runbook", "reviewed_at"),
        ("Source", "failing_since"),
        ("Source", "last_success_at"),
        ("SLO", "service"),
        ("SLO", "sli_value"),
        ("SLO", "budget_remaining"),
        ("SLO", "time_to_exhaustion"),
        ("SLO", "evaluated_at"),
        ("SLOSnapshot", "budget_remaining"),
        ("SLOHistory", "next"),
        ("Job", "service"),
        ("Job", "min_duration"),
        ("Job", "last_success"),
        ("Job", "next_expected"),
        ("Job", "ping_url"),
        ("JobRun", "run_id"),
        ("JobRun", "outcome"),
        ("JobRun", "duration"),
        ("JobRun", "exit_code"),
        ("JobPingAnswer", "run"),
        ("AuditEvent", "seq"),
    ],
)
def test_fields_that_may_be_null_say_so(schema, field):
    properties = openapi_schema()["components"]["schemas"][schema]["properties"]

    assert properties[field].get("nullable") is True, properties[field]
