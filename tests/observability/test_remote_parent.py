"""A trace continued from the caller's traceparent says so, on the span and in the logs.

Continuing the caller's trace is the standard (W3C Trace Context), but the trace id
is then chosen by whoever sent the request, and alerts and notifications store it.
"""

from __future__ import annotations

import pytest
from django.test import Client

from observability import tracing
from observability.middleware import SPAN_NAME

pytestmark = [
    pytest.mark.urls("tests.observability.urls"),
    pytest.mark.usefixtures("observability_on"),
]

CALLER_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CALLER_TRACE_ID}-00f067aa0ba902b7-01"


def server_span(spans):
    [span] = [s for s in spans.get_finished_spans() if s.name == SPAN_NAME]
    return span


def test_a_continued_trace_is_marked_remote_on_the_server_span(spans):
    response = Client().get("/ok/", HTTP_TRACEPARENT=TRACEPARENT)

    span = server_span(spans)
    assert response["X-Trace-Id"] == CALLER_TRACE_ID  # still continued
    assert span.attributes[tracing.PARENT_REMOTE] is True


@pytest.mark.parametrize(
    "header",
    [None, "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "not a traceparent"],
)
def test_a_trace_started_here_carries_no_mark(spans, header):
    extra = {} if header is None else {"HTTP_TRACEPARENT": header}

    response = Client().get("/ok/", **extra)

    span = server_span(spans)
    assert response["X-Trace-Id"] != CALLER_TRACE_ID
    assert tracing.PARENT_REMOTE not in span.attributes


@pytest.mark.django_db
def test_the_requests_log_lines_say_the_parent_is_remote(json_logs, spans):
    Client().get("/logs/", HTTP_TRACEPARENT=TRACEPARENT)
    # Logged by Django after the middleware chain has returned.
    Client().get("/forbidden/", HTTP_TRACEPARENT=TRACEPARENT)

    lines = [line for line in json_logs() if line["trace_id"] == CALLER_TRACE_ID]
    assert {line["logger"] for line in lines} >= {"tests.observability", "django.request"}
    assert {line.get("trace_parent") for line in lines} == {"remote"}


@pytest.mark.django_db
def test_log_lines_of_a_trace_started_here_have_no_trace_parent(json_logs, spans):
    Client().get("/logs/")
    Client().get("/forbidden/")

    lines = [line for line in json_logs() if line["logger"] != "observability.spans"]
    assert {line["logger"] for line in lines} >= {"tests.observability", "django.request"}
    assert all("trace_parent" not in line for line in lines)


@pytest.mark.django_db
def test_the_mark_does_not_outlive_the_request(json_logs, spans):
    Client().get("/logs/", HTTP_TRACEPARENT=TRACEPARENT)

    assert not tracing.parent_is_remote()
