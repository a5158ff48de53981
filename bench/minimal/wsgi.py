"""The WSGI application of one variant, with tracing set up the same way in both
instrumented variants: every span recorded and handed to a batch processor.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.minimal.settings")

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)


class CountingExporter(SpanExporter):
    """Stands in for an OTLP exporter without the network: counts what it is given."""

    exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        CountingExporter.exported += len(spans)
        return SpanExportResult.SUCCESS


def build():
    import django
    from django.conf import settings

    django.setup(set_prefix=False)
    variant = os.environ.get("BENCH_VARIANT", "bare")
    if variant == "standard":
        from opentelemetry import trace
        from opentelemetry.instrumentation.django import DjangoInstrumentor
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider

        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "bench"}))
        provider.add_span_processor(BatchSpanProcessor(CountingExporter()))
        trace.set_tracer_provider(provider)
        DjangoInstrumentor().instrument(tracer_provider=provider)
        assert settings.MIDDLEWARE[0].startswith("opentelemetry."), settings.MIDDLEWARE
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    if variant == "package":
        from observability import tracing

        tracing.add_span_processor(BatchSpanProcessor(CountingExporter()))
    return application


application = build()
