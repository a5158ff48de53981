"""Tasks of the project as a whole (each context keeps its own tasks.py)."""

from celery import shared_task

from observability import context, tracing


@shared_task(name="controlplane.probe")
def probe() -> dict[str, str | None]:
    """Answer with the ids this worker sees: proves a worker is consuming and that the
    trace and audit context cross the broker (used by /healthz?worker=1)."""
    ids = context.current()
    return {
        "trace_id": tracing.current_trace_id(),
        "request_id": ids.request_id,
        "user_id": ids.user_id,
        "organization_id": ids.organization_id,
    }
