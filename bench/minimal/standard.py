"""The trace-header middleware of the hand-assembled stack, and its tracer set-up."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase
from opentelemetry import trace


class TraceIdHeader:
    """``X-Trace-Id`` from the span DjangoInstrumentor's middleware opened."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            response["X-Trace-Id"] = format(span_context.trace_id, "032x")
        return response
