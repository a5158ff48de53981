"""A task queued during a request runs on a real worker in the same trace and audit context."""

import re

import pytest

from controlplane.catalog.models import Role

pytestmark = pytest.mark.integration


def test_probe_task_shares_the_requests_trace_and_audit_ids(celery_worker, client, member, org):
    user = member(org, Role.VIEWER)
    client.force_login(user)
    incoming_trace = "4bf92f3577b34da6a3ce929d0e0e4736"

    response = client.get(
        "/healthz?worker=1",
        HTTP_X_REQUEST_ID="req-worker-probe-1",
        HTTP_TRACEPARENT=f"00-{incoming_trace}-00f067aa0ba902b7-01",
    )

    assert response.status_code == 200, response.content
    seen = response.json()["worker"]
    assert response["X-Trace-Id"] == incoming_trace
    assert seen["trace_id"] == incoming_trace
    assert seen["request_id"] == "req-worker-probe-1"
    assert seen["user_id"] == str(user.pk)


def test_probe_without_a_request_id_gets_a_generated_one(celery_worker, client):
    response = client.get("/healthz?worker=1")

    seen = response.json()["worker"]
    assert seen["request_id"] == response["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", seen["trace_id"])
    assert seen["trace_id"] == response["X-Trace-Id"]
