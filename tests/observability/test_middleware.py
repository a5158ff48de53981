from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import REGISTRY

from observability.middleware import SPAN_NAME, UNMATCHED_ROUTE

pytestmark = [
    pytest.mark.urls("tests.observability.urls"),
    pytest.mark.usefixtures("observability_on"),
]

TRACE_ID = re.compile(r"[0-9a-f]{32}")
CALLER_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"


def server_span(spans):
    [span] = [s for s in spans.get_finished_spans() if s.name == SPAN_NAME]
    return span


def hex_trace_id(span) -> str:
    return format(span.get_span_context().trace_id, "032x")


@pytest.fixture
def client() -> Client:
    # 500s come back as responses, as they would from a real server.
    return Client(raise_request_exception=False)


@pytest.mark.parametrize(("path", "status"), [("/ok/", 200), ("/nowhere/", 404), ("/boom/", 500)])
def test_trace_id_header_names_the_server_span(client, spans, path, status):
    response = client.get(path)

    assert response.status_code == status
    assert TRACE_ID.fullmatch(response["X-Trace-Id"])
    span = server_span(spans)
    assert response["X-Trace-Id"] == hex_trace_id(span)
    assert span.kind == SpanKind.SERVER


def test_admin_pages_carry_the_headers(client, spans):
    response = client.get("/admin/login/")

    assert response.status_code == 200
    assert response["X-Trace-Id"] == hex_trace_id(server_span(spans))
    assert response["X-Request-Id"]


def test_server_errors_mark_the_span_and_keep_the_exception(client, spans):
    client.get("/boom/")

    span = server_span(spans)
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["http.response.status_code"] == 500
    [event] = [e for e in span.events if e.name == "exception"]
    assert event.attributes["exception.message"] == "the view failed"


def test_client_errors_leave_the_span_status_unset(client, spans):
    client.get("/nowhere/")

    assert server_span(spans).status.status_code == StatusCode.UNSET


def test_a_valid_traceparent_is_continued(client, spans):
    response = client.get("/ok/", HTTP_TRACEPARENT=f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01")

    span = server_span(spans)
    assert response["X-Trace-Id"] == CALLER_TRACE_ID
    assert hex_trace_id(span) == CALLER_TRACE_ID
    assert format(span.parent.span_id, "016x") == CALLER_SPAN_ID
    assert span.parent.is_remote


@pytest.mark.parametrize(
    "traceparent",
    [
        "garbage",
        f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}",
        f"00-{'0' * 32}-{CALLER_SPAN_ID}-01",
        f"00-{CALLER_TRACE_ID.upper()}-{CALLER_SPAN_ID}-01",
        f"ff-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01",
    ],
)
def test_a_malformed_traceparent_starts_a_new_trace(client, spans, traceparent):
    response = client.get("/ok/", HTTP_TRACEPARENT=traceparent)

    span = server_span(spans)
    assert span.parent is None
    assert response["X-Trace-Id"] == hex_trace_id(span)
    assert response["X-Trace-Id"] != CALLER_TRACE_ID


def test_a_valid_request_id_is_echoed(client, spans):
    response = client.get("/ok/", HTTP_X_REQUEST_ID="lb-7f3a:01.2_x")

    assert response["X-Request-Id"] == "lb-7f3a:01.2_x"
    assert server_span(spans).attributes["app.request.id"] == "lb-7f3a:01.2_x"


@pytest.mark.parametrize(
    "incoming", ["a" * 129, "has space", "<script>", "semi;colon", "ünïcode", "new\\nline"]
)
def test_an_unsafe_request_id_is_replaced(client, spans, incoming):
    response = client.get("/ok/", HTTP_X_REQUEST_ID=incoming)

    assert response["X-Request-Id"] != incoming
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-Id"])
    assert server_span(spans).attributes["app.request.id"] == response["X-Request-Id"]


def test_a_missing_request_id_is_generated_fresh_each_time(client):
    first = client.get("/ok/")["X-Request-Id"]
    second = client.get("/ok/")["X-Request-Id"]

    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


def test_the_request_id_header_name_is_a_setting(client, observability_on):
    observability_on["REQUEST_ID_HEADER"] = "X-Correlation-Id"

    response = client.get("/ok/", HTTP_X_CORRELATION_ID="abc-123")

    assert response["X-Correlation-Id"] == "abc-123"
    assert "X-Request-Id" not in response


def test_span_attributes_use_the_route_template(client, spans):
    client.get("/items/42/")

    attributes = server_span(spans).attributes
    assert attributes["http.route"] == "items/<pk>/"
    assert attributes["http.request.method"] == "GET"
    assert attributes["http.response.status_code"] == 200
    assert "enduser.id" not in attributes
    assert "app.organization.id" not in attributes


def test_a_router_route_is_named_as_a_template_not_a_regex(client, spans):
    # DRF's routers declare `^rules/(?P<key>[^/.]+)/$`; Django reports it as written.
    counted = _count({"http_route": "api/rules/<key>/"})

    response = client.get("/api/rules/api-5xx/")

    assert response.json() == {"key": "api-5xx"}
    assert server_span(spans).attributes["http.route"] == "api/rules/<key>/"
    assert _count({"http_route": "api/rules/<key>/"}) == counted + 1


def test_a_regex_route_loses_its_anchors_and_escapes(client, spans):
    response = client.get("/feeds/releases.xml")

    assert response.content == b"<feed>releases</feed>"
    assert server_span(spans).attributes["http.route"] == "feeds/<name>.xml"


def test_unmatched_paths_share_one_route(client, spans):
    client.get("/no/such/page/123")

    assert server_span(spans).attributes["http.route"] == UNMATCHED_ROUTE


def test_an_organisation_bound_by_the_view_reaches_the_span(client, spans):
    client.get("/orgs/acme/")

    assert server_span(spans).attributes["app.organization.id"] == "acme"


@pytest.mark.django_db
def test_the_signed_in_user_reaches_the_span_by_id(client, spans):
    user = get_user_model().objects.create_user("ada", email="ada@example.com")
    client.force_login(user)

    client.get("/ok/")

    assert server_span(spans).attributes["enduser.id"] == str(user.pk)


@pytest.mark.django_db
def test_a_user_set_during_the_view_is_recorded(spans, rf):
    # DRF's token authentication sets request.user inside the view, after
    # process_view; the middleware reads it again at the end.
    from observability.middleware import ObservabilityMiddleware

    user = get_user_model().objects.create_user("grace")

    def view(request):
        request.user = user
        from django.http import HttpResponse

        return HttpResponse()

    ObservabilityMiddleware(view)(rf.get("/api/"))

    assert server_span(spans).attributes["enduser.id"] == str(user.pk)


@pytest.mark.django_db
def test_an_api_token_user_reaches_the_span(client, spans):
    # DRF authenticates inside the view and hands the user back to the HttpRequest.
    user = get_user_model().objects.create_user("api-caller")

    response = client.get("/api/whoami/", HTTP_AUTHORIZATION="Bearer api-caller")

    assert response.json() == {"id": user.pk}
    assert server_span(spans).attributes["enduser.id"] == str(user.pk)
    assert server_span(spans).attributes["http.route"] == "api/whoami/"


def test_anonymous_requests_leave_the_session_alone(client):
    response = client.get("/ok/")

    assert "Cookie" not in response.get("Vary", "")


def test_context_does_not_outlive_the_request(client):
    from observability import context

    client.get("/orgs/acme/")

    assert context.current() == context.AuditContext()


def test_unknown_methods_share_one_label(client, spans):
    client.generic("BREW", "/ok/")

    attributes = server_span(spans).attributes
    assert attributes["http.request.method"] == "_OTHER"
    assert attributes["http.request.method_original"] == "BREW"


def test_disabled_means_no_headers_and_no_spans(settings, spans):
    settings.OBSERVABILITY = {**settings.OBSERVABILITY, "ENABLED": False}

    response = Client().get("/ok/")

    assert response.status_code == 200
    assert "X-Trace-Id" not in response
    assert "X-Request-Id" not in response
    assert spans.get_finished_spans() == ()


def _series(name: str) -> dict[tuple, float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for metric in REGISTRY.collect()
        for sample in metric.samples
        if sample.name == name
    }


def _count(wanted: dict[str, str]) -> float:
    """Requests counted so far in the series whose labels include `wanted`."""
    return sum(
        value
        for labels, value in _series("http_server_request_duration_seconds_count").items()
        if set(wanted.items()) <= set(labels)
    )


@pytest.mark.parametrize(
    ("path", "route"),
    [("/items/{}/", "items/<pk>/"), ("/api/rules/rule-{}/", "api/rules/<key>/")],
    ids=["path", "router"],
)
def test_a_thousand_ids_make_one_series(client, path, route):
    before = _series("http_server_request_duration_seconds_count")

    for pk in range(1000):
        client.get(path.format(pk))

    after = _series("http_server_request_duration_seconds_count")
    new = {labels: after[labels] - before.get(labels, 0) for labels in after}
    grown = {labels: count for labels, count in new.items() if count}
    assert grown == {
        (
            ("http_request_method", "GET"),
            ("http_response_status_code", "200"),
            ("http_route", route),
        ): 1000
    }


def test_the_duration_histogram_has_the_agreed_buckets(client):
    client.get("/ok/")

    bounds = {
        sample.labels["le"]
        for metric in REGISTRY.collect()
        for sample in metric.samples
        if sample.name == "http_server_request_duration_seconds_bucket"
        and sample.labels["http_route"] == "ok/"
    }
    expected = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.2", "0.25", "0.5", "1.0", "2.5", "5.0"]
    assert bounds == {*expected, "10.0", "+Inf"}


def test_every_request_is_recorded_and_exported_with_its_attributes(client, spans):
    # Sampled at 100 % by default: no request may go without its span, whatever its
    # path, method or status (OTEL_TRACES_SAMPLER can lower it; see the README).
    requests = [("get", "/ok/", 200), ("get", "/nowhere/", 404), ("post", "/ok/", 200)] * 20
    request_ids = []
    trace_ids = []
    for method, path, status in requests:
        response = getattr(client, method)(path)
        assert response.status_code == status
        request_ids.append(response["X-Request-Id"])
        trace_ids.append(response["X-Trace-Id"])

    exported = [s for s in spans.get_finished_spans() if s.name == SPAN_NAME]
    assert [hex_trace_id(s) for s in exported] == trace_ids
    assert len(set(trace_ids)) == len(requests), "one trace per request"
    for span, (method, _path, status), request_id in zip(
        exported, requests, request_ids, strict=True
    ):
        assert span.kind == SpanKind.SERVER
        assert span.attributes["http.request.method"] == method.upper()
        assert span.attributes["http.route"] == ("ok/" if status == 200 else UNMATCHED_ROUTE)
        assert span.attributes["http.response.status_code"] == status
        assert span.attributes["app.request.id"] == request_id
        assert span.end_time >= span.start_time


def test_an_exception_propagated_to_the_server_is_on_the_span(settings, spans):
    # As under a server that wants exceptions raised to it rather than turned into 500s.
    settings.DEBUG_PROPAGATE_EXCEPTIONS = True

    with pytest.raises(Exception, match="the view failed"):
        Client().get("/boom/")

    span = server_span(spans)
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["http.response.status_code"] == 500
    messages = {e.attributes["exception.message"] for e in span.events if e.name == "exception"}
    assert messages == {"the view failed"}
