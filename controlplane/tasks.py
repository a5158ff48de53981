"""Tasks of the project as a whole (each context keeps its own tasks.py)."""

from __future__ import annotations

import socket
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from observability import context, tracing

# A worker not heard of for this long is gone (renamed, scaled down): its row goes.
FORGET_WORKERS_AFTER = timedelta(days=1)


@shared_task(name="controlplane.probe")
def probe() -> dict[str, str | None]:
    """Answer with the ids this worker sees: proves that the trace and audit context
    cross the broker (tests/integration/test_worker_context.py)."""
    ids = context.current()
    return {
        "trace_id": tracing.current_trace_id(),
        "request_id": ids.request_id,
        "user_id": ids.user_id,
        "organization_id": ids.organization_id,
    }


@shared_task(name="controlplane.heartbeat", bind=True, ignore_result=True)
def heartbeat(self) -> str:
    """Beat's heartbeat, run by whichever worker takes it: `/healthz?worker=1` reads it."""
    from controlplane.catalog.models import WorkerHeartbeat

    now = timezone.now()
    worker = self.request.hostname or socket.gethostname()
    WorkerHeartbeat.objects.update_or_create(worker=worker, defaults={"seen_at": now})
    WorkerHeartbeat.objects.filter(seen_at__lt=now - FORGET_WORKERS_AFTER).delete()
    return worker
