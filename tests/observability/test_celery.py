"""Audit ids through Celery: the signal handlers one by one, then a real worker."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from observability import celery as task_context
from observability import context, tracing
from observability.context import AuditContext
from tests.waiting import REQUEST_TIMEOUT


def queued_task(headers: dict) -> SimpleNamespace:
    # What the worker sees: message headers become attributes of task.request.
    return SimpleNamespace(request=SimpleNamespace(**headers))


def test_publishing_copies_the_ids_into_the_headers():
    headers: dict = {"id": "t1"}

    with context.scope(request_id="req-1", user_id="7", organization_id="acme"):
        task_context.copy_context_to_headers(headers=headers, body=(), exchange="")

    assert headers[task_context.HEADER] == {
        "request_id": "req-1",
        "user_id": "7",
        "organization_id": "acme",
    }


def test_the_worker_runs_the_task_with_the_ids_then_forgets_them():
    headers: dict = {}
    with context.scope(request_id="req-1", user_id="7", organization_id="acme"):
        task_context.copy_context_to_headers(headers=headers)
    task = queued_task(headers)
    context.bind(request_id="left-over")

    task_context.bind_context_from_headers(task_id="t1", task=task)
    during = context.current()
    task_context.restore_context(task_id="t1", task=task)

    assert during == AuditContext(request_id="req-1", user_id="7", organization_id="acme")
    assert context.current() == AuditContext(request_id="left-over")


def test_ids_absent_at_publish_are_absent_in_the_worker():
    headers: dict = {}
    with context.scope(request_id="req-2"):
        task_context.copy_context_to_headers(headers=headers)
    context.bind(user_id="someone-else")

    task_context.bind_context_from_headers(task_id="t2", task=queued_task(headers))

    assert context.current() == AuditContext(request_id="req-2")
    task_context.restore_context(task_id="t2")


def test_a_task_without_the_header_keeps_the_callers_context():
    # Eager tasks skip publishing and run in the caller's thread and context.
    context.bind(request_id="req-3", user_id="7")

    task_context.bind_context_from_headers(task_id="t3", task=queued_task({}))
    task_context.restore_context(task_id="t3")

    assert context.current() == AuditContext(request_id="req-3", user_id="7")


def test_unsafe_header_values_are_not_bound():
    carried = {"request_id": "bad id\n", "user_id": 7, "organization_id": "x" * 500}

    task_context.bind_context_from_headers(
        task_id="t4", task=queued_task({task_context.HEADER: carried})
    )

    assert context.current() == AuditContext()
    task_context.restore_context(task_id="t4")


def test_the_task_span_gets_the_audit_attributes(spans):
    headers: dict = {}
    with context.scope(request_id="req-5", organization_id="acme"):
        task_context.copy_context_to_headers(headers=headers)

    with tracing.span("run/tests.task"):
        task_context.bind_context_from_headers(task_id="t5", task=queued_task(headers))
        task_context.restore_context(task_id="t5")

    [finished] = spans.get_finished_spans()
    assert finished.attributes["app.request.id"] == "req-5"
    assert finished.attributes["app.organization.id"] == "acme"


@pytest.fixture
def worker_app():
    """A Celery app with an in-memory broker and a worker thread of its own."""
    from celery import Celery
    from celery.contrib.testing.worker import start_worker

    tracing.configure("observability-tests")
    assert task_context.connect_signals()
    app = Celery("observability-tests", broker="memory://", backend="cache+memory://")
    app.conf.task_always_eager = False
    app.conf.broker_transport_options = {"polling_interval": 0.01}

    @app.task(name="tests.observability.seen")
    def seen() -> dict:
        return {**context.current().as_dict(), "trace_id": tracing.current_trace_id()}

    # A loaded machine is slow to stop the worker thread too; waiting is cheap, failing is not.
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=REQUEST_TIMEOUT):
        yield seen


def test_a_queued_task_runs_in_the_callers_trace_with_its_ids(worker_app, spans):
    with context.scope(request_id="req-6", user_id="7", organization_id="acme"):
        with tracing.span("http.request") as caller:
            result = worker_app.delay()

    seen = result.get(timeout=REQUEST_TIMEOUT)

    assert seen == {
        "request_id": "req-6",
        "user_id": "7",
        "organization_id": "acme",
        "trace_id": format(caller.get_span_context().trace_id, "032x"),
    }
