"""Batch job runs: one span, one count, one duration and a success timestamp each."""

from __future__ import annotations

import time
from contextlib import ContextDecorator
from types import TracebackType

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue

from observability import context, metrics, options
from observability.metrics import FAILURE, SUCCESS  # noqa: F401  (the result labels)
from observability.tracing import audit_attributes

_tracer = trace.get_tracer("observability")


def job_run(name: str, **attributes: AttributeValue) -> JobRun:
    """Measure one run of the job ``name`` (also the span name, e.g. "audit.retention.job").

    Usable as ``with job_run("etl.import") as span:`` or as a decorator, each call a
    run. A run that raises counts as a failure and the exception propagates unchanged.
    The metrics are ``job_runs_total`` and its siblings, prefixed with
    OBSERVABILITY["JOB_METRICS_NAMESPACE"] when the service sets one.
    """
    return JobRun(name, attributes)


class JobRun(ContextDecorator):
    """One run of a job; see ``job_run()``.

    A class rather than a generator-based context manager: a run costs tens of
    microseconds, most of them the span (bench/observability_overhead.py).
    """

    def __init__(self, name: str, attributes: dict[str, AttributeValue]) -> None:
        self.name = name
        self.attributes = attributes

    def _recreate_cm(self) -> JobRun:
        # As a decorator, each call is a run of its own.
        return JobRun(self.name, self.attributes)

    def __enter__(self) -> trace.Span:
        # The namespace is looked up at every run, not at import: a module that
        # decorates its jobs may be imported before settings are ready, and an
        # overridden setting applies at once.
        self._instruments = metrics.job_instruments(options.job_metrics_namespace(), self.name)
        self._started = time.perf_counter()
        self._span = _tracer.start_span(
            self.name,
            attributes={
                **audit_attributes(context.current()),
                "app.job": self.name,
                **self.attributes,
            },
            record_exception=False,
            set_status_on_exception=False,
        )
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        span = self._span
        try:
            if error is not None:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{kind.__name__}: {error}"))
            # Read again: an organisation bound during the run belongs on its span.
            span.set_attributes(audit_attributes(context.current()))
        finally:
            otel_context.detach(self._token)
            span.end()
            self._instruments.record(
                succeeded=error is None, seconds=time.perf_counter() - self._started
            )
