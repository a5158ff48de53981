"""Batch job runs: one span, one count, one duration and a success timestamp each."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from observability import metrics, options
from observability.tracing import span

SUCCESS = "success"
FAILURE = "failure"


@contextmanager
def job_run(name: str, **attributes: AttributeValue) -> Iterator[trace.Span]:
    """Measure one run of the job ``name`` (also the span name, e.g. "audit.retention.job").

    Usable as ``with job_run("etl.import"):`` or as a decorator. A run that raises
    counts as a failure and the exception propagates unchanged. The metrics are
    ``job_runs_total`` and its siblings, prefixed with
    OBSERVABILITY["JOB_METRICS_NAMESPACE"] when the service sets one.
    """
    # Looked up at every run, not at import: a module that decorates its jobs may be
    # imported before settings are ready, and an overridden setting applies at once.
    instruments = metrics.job_metrics(options.load().job_metrics_namespace)
    started = time.perf_counter()
    result = FAILURE
    try:
        with span(name, {"app.job": name}, **attributes) as current:
            yield current
        result = SUCCESS
    finally:
        instruments.runs.labels(job=name, result=result).inc()
        instruments.duration.labels(job=name).observe(time.perf_counter() - started)
        if result == SUCCESS:
            instruments.last_success.labels(job=name).set_to_current_time()
