"""Traces: one SDK tracer provider per process, its exporters, library
instrumentation, and ``span()`` for work that is not an HTTP request.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.util.types import AttributeValue

from observability import context
from observability.context import AuditContext
from observability.exporters import SpanLogExporter

logger = logging.getLogger(__name__)

# Attribute names shared with the logs and the alert pages.
USER_ID = "enduser.id"
ORGANIZATION_ID = "app.organization.id"
REQUEST_ID = "app.request.id"
# On a server span whose parent came from the caller's traceparent header: the trace
# id was chosen outside, by anyone who can send a request, so whatever stores it (an
# alert, a notification) names a trace this service did not start.
PARENT_REMOTE = "app.trace.parent_remote"
# The log field saying the same of a request's log lines.
TRACE_PARENT_LOG_FIELD = "trace_parent"
REMOTE = "remote"

# Libraries whose calls become child spans, each optional: a service without
# Celery (or without the instrumentation package) still starts.
INSTRUMENTORS = (
    ("opentelemetry.instrumentation.celery", "CeleryInstrumentor"),
    ("opentelemetry.instrumentation.requests", "RequestsInstrumentor"),
    ("opentelemetry.instrumentation.psycopg", "PsycopgInstrumentor"),
)

_lock = threading.Lock()
_provider: TracerProvider | None = None
_installed: set[tuple[str, str]] = set()
_tracer = trace.get_tracer("observability")
# True while the current request continues a trace its caller started.
_parent_remote: ContextVar[bool] = ContextVar("observability_trace_parent_remote", default=False)


def configure(
    service_name: str, otlp_endpoint: str = "", log_spans: bool = False
) -> TracerProvider:
    """Install the tracer provider and exporters; calling again adds only what is new."""
    global _provider
    with _lock:
        if _provider is None:
            _provider = _install_provider(service_name)
        if otlp_endpoint and ("otlp", otlp_endpoint) not in _installed:
            _provider.add_span_processor(otlp_processor(otlp_endpoint))
            _installed.add(("otlp", otlp_endpoint))
        if log_spans and ("log", "") not in _installed:
            _provider.add_span_processor(SimpleSpanProcessor(SpanLogExporter()))
            _installed.add(("log", ""))
        if ("instrumentors", "") not in _installed:
            _instrument_libraries(_provider)
            _installed.add(("instrumentors", ""))
        return _provider


def add_span_processor(processor: SpanProcessor) -> None:
    """Send finished spans to one more processor (tests attach an in-memory exporter)."""
    if _provider is None:
        raise RuntimeError("observability.tracing.configure() has not run")
    _provider.add_span_processor(processor)


def traces_url(endpoint: str) -> str:
    """OTLP/HTTP puts traces under /v1/traces of the collector's base URL."""
    return f"{endpoint.rstrip('/')}/v1/traces"


def _install_provider(service_name: str) -> TracerProvider:
    existing = trace.get_tracer_provider()
    if isinstance(existing, TracerProvider):
        # Someone configured the SDK already (e.g. `opentelemetry-instrument`): join in.
        return existing
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:
        logger.warning("another tracer provider is installed; spans may not be exported")
    return provider


def otlp_processor(endpoint: str) -> BatchSpanProcessor:
    """Spans batched in the background and sent over OTLP/HTTP to the collector."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint)))


def origin_only(span: trace.Span, request: Any) -> None:
    """Outgoing request spans keep scheme, host and port of the URL, nothing more.

    Webhook URLs carry their secret in the path (Slack's do) or the query, and
    traces are read by more people than the channel settings.
    """
    if not span.is_recording():
        return
    parts = urlsplit(request.url)
    origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    for key in ("http.url", "url.full"):
        if key in (getattr(span, "attributes", None) or {}):
            span.set_attribute(key, origin)


_INSTRUMENT_OPTIONS: dict[str, dict[str, Any]] = {
    "RequestsInstrumentor": {"request_hook": origin_only},
}


def _instrument_libraries(provider: TracerProvider) -> None:
    for module_name, class_name in INSTRUMENTORS:
        try:
            instrumentor = getattr(importlib.import_module(module_name), class_name)()
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.instrument(
                    tracer_provider=provider, **_INSTRUMENT_OPTIONS.get(class_name, {})
                )
        except Exception:
            logger.warning("could not instrument %s", module_name, exc_info=True)


def audit_attributes(ids: AuditContext) -> dict[str, str]:
    """Span attributes for the audit ids that are set."""
    pairs = {USER_ID: ids.user_id, ORGANIZATION_ID: ids.organization_id, REQUEST_ID: ids.request_id}
    return {name: value for name, value in pairs.items() if value is not None}


@contextmanager
def span(
    name: str,
    /,
    attributes: Mapping[str, AttributeValue] | None = None,
    **more: AttributeValue,
) -> Iterator[trace.Span]:
    """A span for a job or a step of one, tagged with the audit ids.

    The ids are read again when the block ends, so an organisation bound inside
    the block is on the span too. Exceptions are recorded and re-raised.
    """
    started_with = {**audit_attributes(context.current()), **(attributes or {}), **more}
    with _tracer.start_as_current_span(name, attributes=started_with) as current:
        try:
            yield current
        finally:
            current.set_attributes(audit_attributes(context.current()))


def current_trace_id() -> str | None:
    """The current trace id as 32 lowercase hex digits, or None outside a trace."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


def current_span_id() -> str | None:
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.span_id, "016x") if span_context.is_valid else None


def remote_parent(parent: trace.SpanContext) -> bool:
    """Whether a context extracted from incoming headers names a caller's span."""
    return parent.is_valid and parent.is_remote


@contextmanager
def continuing_remote_trace(remote: bool) -> Iterator[None]:
    """Mark the block as continuing a trace from outside (or not), then restore."""
    token = _parent_remote.set(remote)
    try:
        yield
    finally:
        _parent_remote.reset(token)


def mark_remote() -> Token[bool]:
    """``continuing_remote_trace(True)`` without its generator, for the middleware;
    undone by ``unmark_remote(token)``."""
    return _parent_remote.set(True)


def unmark_remote(token: Token[bool]) -> None:
    _parent_remote.reset(token)


def parent_is_remote() -> bool:
    """Whether the current request continues a trace its caller started."""
    return _parent_remote.get()
