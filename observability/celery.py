"""Audit ids travel with Celery tasks, from the code that queues a task to the worker.

OpenTelemetry's Celery instrumentation carries the trace (``traceparent``) in the
task headers; these handlers carry the request, user and organisation ids next to
it, under one header, so the task's logs and spans line up with the request's.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Any

from opentelemetry import trace

from observability import context, tracing

HEADER = "audit_context"

# task id -> the scope to leave when the task ends. A worker process runs one
# task at a time per thread; the map only outlives a task whose postrun never came.
_scopes: dict[str, ExitStack] = {}


def connect_signals() -> bool:
    """Connect the handlers (once, however often it is called); False without Celery."""
    try:
        from celery import signals
    except ImportError:
        return False
    signals.before_task_publish.connect(
        copy_context_to_headers, weak=False, dispatch_uid="observability.copy_context"
    )
    signals.task_prerun.connect(
        bind_context_from_headers, weak=False, dispatch_uid="observability.bind_context"
    )
    signals.task_postrun.connect(
        restore_context, weak=False, dispatch_uid="observability.restore_context"
    )
    signals.worker_process_shutdown.connect(
        forget_dead_process, weak=False, dispatch_uid="observability.forget_dead_process"
    )
    return True


def copy_context_to_headers(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """before_task_publish: write the current ids into the message headers."""
    if headers is not None:
        headers[HEADER] = context.current().as_dict()


def bind_context_from_headers(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """task_prerun: run the task with the ids of whoever queued it.

    A task without the header (queued by a producer without these handlers, or run
    eagerly in the caller's thread) keeps the context it already has.
    """
    carried = getattr(getattr(task, "request", None), HEADER, None)
    if task_id is None or not isinstance(carried, dict):
        return
    ids = {name: _clean(name, carried.get(name)) for name in context.FIELDS}
    stack = ExitStack()
    stack.enter_context(context.scope(**ids))
    _scopes[task_id] = stack

    # The Celery instrumentation's task span is current by now (its handler was
    # connected first); tag it like any other span of ours.
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(tracing.audit_attributes(context.current()))


def restore_context(task_id: str | None = None, **_: Any) -> None:
    """task_postrun: give the worker back the context it had before the task."""
    stack = _scopes.pop(task_id, None) if task_id is not None else None
    if stack is None:
        return
    try:
        stack.close()
    except ValueError:
        # Entered in another context (a pool that switched threads): start clean.
        context.clear()


def forget_dead_process(pid: int | None = None, **_: Any) -> None:
    """worker_process_shutdown: the prefork child's `live*` gauges leave with it,
    as gunicorn workers' do through observability.gunicorn.child_exit.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


def _clean(name: str, value: object) -> str | None:
    # Headers come off the wire; take only what we would have written ourselves.
    if not isinstance(value, str) or not value or len(value) > context.MAX_REQUEST_ID_LENGTH:
        return None
    if name == "request_id" and not context.valid_request_id(value):
        return None
    return value
