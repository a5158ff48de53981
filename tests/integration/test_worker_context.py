"""A task queued in a request's trace and audit context runs on a real worker in the
same context; and beat's heartbeat, run by a real worker, makes /healthz?worker=1 green."""

import re

import pytest

from controlplane.tasks import heartbeat, probe
from observability import context, tracing
from tests import waiting

pytestmark = pytest.mark.integration


def test_a_probe_task_runs_in_the_queuers_trace_and_audit_context(celery_worker):
    with (
        context.scope(request_id="req-worker-probe-1", user_id="42", organization_id="7"),
        tracing.span("test.queue") as span,
    ):
        trace_id = tracing.current_trace_id()
        seen = probe.delay().get(timeout=waiting.DEADLINE)

    assert span is not None
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    assert seen == {
        "trace_id": trace_id,
        "request_id": "req-worker-probe-1",
        "user_id": "42",
        "organization_id": "7",
    }


def test_healthz_turns_green_once_a_real_worker_runs_the_heartbeat(celery_worker, client):
    assert client.get("/healthz?worker=1").status_code == 503  # no heartbeat yet

    heartbeat.delay()

    answer = waiting.until(
        lambda: (r := client.get("/healthz?worker=1")).status_code == 200 and r,
        what="/healthz?worker=1 to see the worker's heartbeat",
        process=celery_worker,
    )
    assert answer.json()["worker"] == "ok"
