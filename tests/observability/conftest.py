from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from observability import context, tracing
from observability.logging import JsonFormatter

OBSERVABILITY_ON = {
    "ENABLED": True,
    "SERVICE_NAME": "observability-tests",
    "OTLP_ENDPOINT": "",
    "LOG_SPANS": False,
    "REQUEST_ID_HEADER": "X-Request-Id",
}


@pytest.fixture(scope="session")
def _span_exporter() -> InMemorySpanExporter:
    # The provider is process-wide and processors cannot be removed: attach one
    # exporter for the session and empty it around each test.
    tracing.configure("observability-tests")
    exporter = InMemorySpanExporter()
    tracing.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def spans(_span_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """Finished spans of this test: spans.get_finished_spans()."""
    _span_exporter.clear()
    yield _span_exporter
    _span_exporter.clear()


@pytest.fixture(autouse=True)
def _fresh_audit_context() -> Iterator[None]:
    context.clear()
    yield
    context.clear()


@pytest.fixture
def observability_on(settings) -> dict:
    """The middleware on, whatever the environment running the suite says."""
    settings.OBSERVABILITY = dict(OBSERVABILITY_ON)
    return settings.OBSERVABILITY


@pytest.fixture
def json_logs() -> Iterator[Callable[[], list[dict]]]:
    """Log lines formatted as they are emitted (the ids are read at that moment).

    Returns a function giving the lines so far, parsed.
    """
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
