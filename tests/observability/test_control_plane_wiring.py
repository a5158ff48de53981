"""How the control plane wires the package: one request histogram, no duplicate request
families, django-prometheus kept for the database metrics only it gives.
"""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client

from observability.middleware import SPAN_NAME

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("observability_on")]


def _value(body: str, name: str, **labels: str) -> float:
    wanted = {f'{key}="{value}"' for key, value in labels.items()}
    total = 0.0
    for line in body.splitlines():
        match = re.fullmatch(rf"{name}(?:{{(.*)}})? (\S+)", line)
        if match and wanted <= set((match.group(1) or "").split(",")):
            total += float(match.group(2))
    return total


def test_requests_are_counted_once_and_queries_by_django_prometheus():
    client = Client()
    before = client.get("/metrics").content.decode()

    assert client.get("/healthz").status_code == 200
    after = client.get("/metrics").content.decode()

    route = {"http_route": "healthz", "http_response_status_code": "200"}
    counted = _value(after, "http_server_request_duration_seconds_count", **route)
    assert counted - _value(before, "http_server_request_duration_seconds_count", **route) == 1
    assert "django_http_" not in after, "django-prometheus' request families are not wired"
    queries = {"alias": "default", "vendor": connection.vendor}
    executed = _value(after, "django_db_execute_total", **queries)
    assert executed > _value(before, "django_db_execute_total", **queries)


def test_database_queries_are_child_spans_of_the_request_on_postgresql(spans):
    if connection.vendor != "postgresql":
        pytest.skip("the psycopg instrumentation applies to PostgreSQL (DATABASE_URL)")

    assert Client().get("/healthz").status_code == 200

    finished = spans.get_finished_spans()
    [request] = [s for s in finished if s.name == SPAN_NAME]
    queries = [s for s in finished if s.attributes.get("db.system") == "postgresql"]
    assert queries, "django-prometheus' cursor wrapper must not hide psycopg's spans"
    assert {s.parent.span_id for s in queries} == {request.get_span_context().span_id}
