"""Span exporters of our own: finished spans as JSON log lines, a trace sink with no collector."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

span_logger = logging.getLogger("observability.spans")


class SpanLogExporter(SpanExporter):
    """Writes each finished span to the ``observability.spans`` logger.

    The ids are passed explicitly: by the time a span is exported it is no longer
    the current span, so the formatter must not take them from the context.
    """

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            context = span.get_span_context()
            parent = span.parent
            duration = (span.end_time or 0) - (span.start_time or 0)
            span_logger.info(
                span.name,
                extra={
                    "trace_id": format(context.trace_id, "032x"),
                    "span_id": format(context.span_id, "016x"),
                    "parent_span_id": format(parent.span_id, "016x") if parent else None,
                    "span_kind": span.kind.name,
                    "duration_ms": round(duration / 1e6, 3),
                    "status": span.status.status_code.name,
                    "attributes": dict(span.attributes or {}),
                },
            )
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass
