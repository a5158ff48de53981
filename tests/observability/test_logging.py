from __future__ import annotations

import json
import logging
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from observability import context
from observability.middleware import SPAN_NAME
from observability.tracing import span

logger = logging.getLogger("tests.observability.logging")

RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
IDS = ("trace_id", "span_id", "request_id", "user_id", "organization_id")


def test_a_line_is_one_json_object_with_every_field(json_logs):
    logger.warning("disk %s%% full", 91)

    [line] = json_logs()
    assert RFC3339_UTC.fullmatch(line["timestamp"])
    assert line["level"] == "WARNING"
    assert line["logger"] == "tests.observability.logging"
    assert line["message"] == "disk 91% full"
    assert {key: line[key] for key in IDS} == dict.fromkeys(IDS)


def test_ids_come_from_the_current_span_and_context(json_logs):
    with context.scope(request_id="req-1", user_id=7, organization_id="acme"):
        with span("tests.step") as current:
            logger.info("inside")
            span_context = current.get_span_context()

    [line] = json_logs()
    assert line["trace_id"] == format(span_context.trace_id, "032x")
    assert line["span_id"] == format(span_context.span_id, "016x")
    assert (line["request_id"], line["user_id"], line["organization_id"]) == ("req-1", "7", "acme")


def test_exceptions_are_one_string_on_the_same_line(json_logs):
    try:
        raise ValueError("bad value")
    except ValueError:
        logger.exception("failed")

    [line] = json_logs()
    assert line["exception"].startswith("Traceback")
    assert "ValueError: bad value" in line["exception"]


def test_plain_extras_are_kept_and_objects_dropped(json_logs):
    logger.info("sync", extra={"calendar": "primary", "events": [1, 2], "handle": object()})

    [line] = json_logs()
    assert line["calendar"] == "primary"
    assert line["events"] == [1, 2]
    assert "handle" not in line


def test_personal_extras_are_dropped(json_logs):
    logger.info("hello", extra={"email": "ada@example.com", "username": "ada", "ip": "10.0.0.1"})

    [line] = json_logs()
    assert not {"email", "username", "ip"} & set(line)


def test_addresses_in_messages_and_tracebacks_are_redacted(json_logs):
    try:
        raise ValueError("Key (email)=(ada@example.com) already exists.")
    except ValueError:
        logger.exception("could not save ada.lovelace+work@mail.example.org")

    [line] = json_logs()
    assert "@" not in json.dumps(line)
    assert line["message"] == "could not save <email>"
    assert "Key (email)=(<email>) already exists." in line["exception"]


def test_ids_given_with_the_record_win(json_logs):
    with span("tests.outer"):
        logger.info("exported", extra={"trace_id": "a" * 32, "span_id": "b" * 16})

    [line] = json_logs()
    assert (line["trace_id"], line["span_id"]) == ("a" * 32, "b" * 16)


@pytest.mark.urls("tests.observability.urls")
@pytest.mark.django_db
def test_request_log_lines_carry_the_ids_and_no_address(json_logs, spans, observability_on):
    user = get_user_model().objects.create_user("grace_hopper", email="grace@navy.example")
    client = Client()
    client.force_login(user)

    response = client.get("/logs/", HTTP_X_REQUEST_ID="req-logs-1")

    [server] = [s for s in spans.get_finished_spans() if s.name == SPAN_NAME]
    [line] = [line for line in json_logs() if line["logger"] == "tests.observability"]
    assert line["trace_id"] == response["X-Trace-Id"]
    assert line["span_id"] == format(server.get_span_context().span_id, "016x")
    assert line["request_id"] == "req-logs-1"
    assert line["user_id"] == str(user.pk)
    text = json.dumps(json_logs())
    # The view passes the user object along; only its id may reach the line.
    assert "grace@navy.example" not in text
    assert "grace_hopper" not in text


@pytest.mark.urls("tests.observability.urls")
@pytest.mark.parametrize(("path", "level"), [("/forbidden/", "WARNING"), ("/boom/", "ERROR")])
def test_django_request_lines_carry_the_ids_and_not_the_request(
    json_logs, observability_on, path, level
):
    # "Forbidden" is logged by Django after the middleware chain has returned,
    # "Internal Server Error" inside it: both must name the request.
    response = Client(raise_request_exception=False).get(path, HTTP_X_REQUEST_ID="req-django")

    [line] = [line for line in json_logs() if line["logger"] == "django.request"]
    assert line["level"] == level
    assert line["request_id"] == "req-django"
    assert line["trace_id"] == response["X-Trace-Id"]
    assert line["status_code"] == response.status_code
    assert "request" not in line
