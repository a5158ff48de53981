"""No input answers 500: Schemathesis generates requests from the OpenAPI schema and
sends them, in process, to the WSGI application with a write token.

Every operation gets a bounded number of generated examples, valid and invalid ones,
derandomised so a failure reproduces. Operations that name an object are called twice
per example: with the generated name (almost always unknown: a 404) and with the name
of a seeded object, so the generated bodies and query strings reach the serializers
and the database. Besides "no 5xx", every answer must be one the schema documents, in
the shape it documents.
"""

from __future__ import annotations

import functools

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from controlplane.catalog.models import ApiToken
from tests.authorization import (
    Holdings,
    api_operations,
    furnish,
    furnish_shared,
    lookups,
    openapi_schema,
)
from tests.factories import make_alert, make_rule

EXAMPLES = 25
# No 5xx; and every answer is one the schema documents, in the shape it documents.
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@functools.cache
def loaded_schema() -> BaseSchema:
    schema = schemathesis.openapi.from_dict(openapi_schema())
    schema.app = WSGIHandler()
    return schema


@pytest.fixture
def seeded(org) -> tuple[Holdings, dict[str, str]]:
    """An organisation with one object of every kind, and its write token's header.

    Some rows leave out what they may: a shared runbook has no organisation, an alert
    may have no service, so the answers show their nulls.
    """
    held = furnish(org, "a", furnish_shared())
    make_alert(make_rule(org, "no.service"), "fp-no-service")
    token = ApiToken.issue(org, ApiToken.Scope.WRITE, "schemathesis")[1]
    return held, {"Authorization": f"Bearer {token}"}


@pytest.fixture(autouse=True)
def connection_kept_open():
    """Django closes the database connection after each request it serves, which
    would end the test's transaction; its test client does the same as this."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


# The seeded object each collection's paths name.
KINDS = {
    "alerts": "alert",
    "rules": "rule",
    "runbooks": "runbook",
    "services": "service",
    "sources": "source",
    "channels": "channel",
    "escalation-policies": "policy",
    "integrations": "alertmanager",
    "schedules": "schedule",
    "slos": "slo",
    "jobs": "job",
    "audit": "audit",
}


def seeded_parameters(held: Holdings, path: str) -> dict[str, object]:
    """The path parameters that name the seeded object of the path's kind."""
    collection = path.removeprefix("/api/v1/").split("/")[0]
    assert collection in KINDS, f"{path}: which seeded object does it name? Add it to KINDS."
    return lookups(held.objects[KINDS[collection]])


@pytest.mark.parametrize("operation", api_operations())
def test_no_input_answers_500(operation, seeded):
    held, headers = seeded
    method, path = operation.split(" ", 1)
    api_operation = loaded_schema()[path][method]
    valid_or_not = st.one_of(
        api_operation.as_strategy(GenerationMode.POSITIVE),
        api_operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=valid_or_not)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case) -> None:
        # Each example starts from the seeded rows: what it changed is rolled back.
        with transaction.atomic():
            case.call_and_validate(headers=headers, checks=CHECKS)
            if case.path_parameters:
                names = seeded_parameters(held, path)
                case.path_parameters = {name: names[name] for name in case.path_parameters}
                if case.query and "organization" in case.query:
                    case.query["organization"] = held.organization.slug
                case.call_and_validate(headers=headers, checks=CHECKS)
            transaction.set_rollback(True)

    fuzz()
