from __future__ import annotations

import http.server
import threading

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import StatusCode

from observability import context, tracing
from observability.exporters import SpanLogExporter
from tests.waiting import REQUEST_TIMEOUT


def test_span_carries_the_audit_context(spans):
    with context.scope(request_id="req-9", user_id="7", organization_id="acme"):
        with tracing.span("audit.retention.job", {"app.rows": 3}, batch="nightly"):
            pass

    [finished] = spans.get_finished_spans()
    assert finished.name == "audit.retention.job"
    assert dict(finished.attributes) == {
        "enduser.id": "7",
        "app.organization.id": "acme",
        "app.request.id": "req-9",
        "app.rows": 3,
        "batch": "nightly",
    }


def test_span_picks_up_ids_bound_inside_it(spans):
    with tracing.span("calendar.synchronize"):
        context.bind(organization_id="acme")

    [finished] = spans.get_finished_spans()
    assert finished.attributes["app.organization.id"] == "acme"


def test_span_without_context_has_no_audit_attributes(spans):
    with tracing.span("alerting.evaluate"):
        pass

    [finished] = spans.get_finished_spans()
    assert not {"enduser.id", "app.organization.id", "app.request.id"} & set(finished.attributes)


def test_span_records_and_reraises_exceptions(spans):
    with pytest.raises(ZeroDivisionError), tracing.span("alerting.evaluate"):
        1 / 0  # noqa: B018

    [finished] = spans.get_finished_spans()
    assert finished.status.status_code == StatusCode.ERROR
    assert [event.name for event in finished.events] == ["exception"]


def test_current_ids_follow_the_current_span(spans):
    assert tracing.current_trace_id() is None
    assert tracing.current_span_id() is None

    with tracing.span("outer") as outer, tracing.span("inner") as inner:
        trace_id, span_id = tracing.current_trace_id(), tracing.current_span_id()

    assert trace_id == format(outer.get_span_context().trace_id, "032x")
    assert span_id == format(inner.get_span_context().span_id, "016x")
    assert len(trace_id) == 32
    assert len(span_id) == 16


def test_configure_twice_keeps_one_provider(spans):
    first = tracing.configure("observability-tests")
    second = tracing.configure("observability-tests")

    with tracing.span("once"):
        pass

    assert first is second
    assert len(spans.get_finished_spans()) == 1


def test_libraries_are_instrumented():
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    tracing.configure("observability-tests")

    for instrumentor in (CeleryInstrumentor(), PsycopgInstrumentor(), RequestsInstrumentor()):
        assert instrumentor.is_instrumented_by_opentelemetry, type(instrumentor).__name__


def test_an_absent_library_is_skipped_with_a_warning(monkeypatch, caplog):
    # A fresh configure on a fake provider: the real one is already instrumented.
    monkeypatch.setattr(
        tracing, "INSTRUMENTORS", (("observability_tests_no_such_module", "Instrumentor"),)
    )

    tracing._instrument_libraries(TracerProvider())

    assert "observability_tests_no_such_module" in caplog.text


def test_log_exporter_writes_span_lines_with_their_own_ids(json_logs):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SpanLogExporter()))
    tracer = provider.get_tracer("tests")

    with tracer.start_as_current_span("outer") as outer, tracer.start_as_current_span("inner"):
        pass

    lines = [line for line in json_logs() if line["logger"] == "observability.spans"]
    inner, outer_line = lines
    assert inner["message"] == "inner"
    assert inner["trace_id"] == format(outer.get_span_context().trace_id, "032x")
    assert inner["parent_span_id"] == format(outer.get_span_context().span_id, "016x")
    assert outer_line["span_id"] == inner["parent_span_id"]
    assert outer_line["parent_span_id"] is None
    assert inner["duration_ms"] >= 0
    assert inner["status"] == "UNSET"


class _Collector(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    _Collector.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Collector.received
    server.shutdown()
    server.server_close()


def test_otlp_exports_to_the_collectors_traces_path(collector):
    endpoint, received = collector
    provider = TracerProvider(resource=Resource.create({"service.name": "controlplane"}))
    processor = tracing.otlp_processor(endpoint + "/")
    provider.add_span_processor(processor)

    with provider.get_tracer("tests").start_as_current_span("alerting.evaluate"):
        pass
    assert processor.force_flush(timeout_millis=int(REQUEST_TIMEOUT * 1000))
    provider.shutdown()

    [(path, body)] = received
    assert path == "/v1/traces"
    request = ExportTraceServiceRequest.FromString(body)
    [resource_spans] = request.resource_spans
    attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert attributes["service.name"] == "controlplane"
    assert [s.name for s in resource_spans.scope_spans[0].spans] == ["alerting.evaluate"]


def test_outgoing_requests_are_traced_without_the_url_path(collector, spans):
    import requests

    endpoint, _ = collector
    tracing.configure("observability-tests")

    with tracing.span("deliver") as outer:
        requests.post(
            f"{endpoint}/services/T000/B000/s3cr3t?token=x", json={}, timeout=REQUEST_TIMEOUT
        )

    [outgoing] = [s for s in spans.get_finished_spans() if s.name == "POST"]
    assert outgoing.parent.span_id == outer.get_span_context().span_id
    urls = [v for k, v in outgoing.attributes.items() if k in {"http.url", "url.full"}]
    assert urls == [endpoint]
    assert "s3cr3t" not in str(dict(outgoing.attributes))


def test_psycopg_queries_become_child_spans(spans):
    import psycopg

    from tests import services

    services.require(
        "PostgreSQL", services.port_open("127.0.0.1", 5432), "nothing at 127.0.0.1:5432"
    )
    tracing.configure("observability-tests")

    with tracing.span("outer") as outer:
        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres") as conn:
            conn.execute("SELECT 1").fetchone()

    queries = [
        s for s in spans.get_finished_spans() if s.attributes.get("db.system") == "postgresql"
    ]
    assert queries
    assert all(s.parent.span_id == outer.get_span_context().span_id for s in queries)
