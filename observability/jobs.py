"""Batch job runs: one span, one count, one duration and a success timestamp each."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from observability import metrics
from observability.tracing import span

SUCCESS = "success"
FAILURE = "failure"


@contextmanager
def job_run(name: str, **attributes: AttributeValue) -> Iterator[trace.Span]:
    """Measure one run of the job ``name`` (also the span name, e.g. "audit.retention.job").

    Usable as ``with job_run("etl.import"):`` or as a decorator. A run that raises
    counts as a failure and the exception propagates unchanged.
    """
    started = time.perf_counter()
    result = FAILURE
    try:
        with span(name, {"app.job": name}, **attributes) as current:
            yield current
        result = SUCCESS
    finally:
        metrics.controlplane_job_runs_total.labels(job=name, result=result).inc()
        metrics.controlplane_job_run_duration_seconds.labels(job=name).observe(
            time.perf_counter() - started
        )
        if result == SUCCESS:
            metrics.controlplane_job_last_success_timestamp_seconds.labels(
                job=name
            ).set_to_current_time()
