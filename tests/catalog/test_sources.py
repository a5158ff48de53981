"""Metric sources: where they may point, what of their secret is shown, and the one log
line each time one goes down or comes back."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from controlplane.catalog import sources
from controlplane.catalog.models import MetricSource, Role, SourceHealth
from controlplane.promql.client import SourceTimeout, SourceUnavailable
from observability.logging import JsonFormatter
from observability.tracing import span
from tests.promql.fake import FakePrometheus

pytestmark = pytest.mark.django_db


@pytest.fixture
def source(org, fake) -> MetricSource:
    return MetricSource.objects.create(
        organization=org, name="prom", url=fake.url, timeout=2, auth_header="Bearer s3cret"
    )


# Where a source may point.


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "http://127.0.0.1:9090",
            "127.0.0.1 is a loopback address; set ALLOWED_SOURCE_NETWORKS to allow it.",
        ),
        (
            "http://[::1]:9090",
            "::1 is a loopback address; set ALLOWED_SOURCE_NETWORKS to allow it.",
        ),
        (
            "http://169.254.169.254/",
            "169.254.169.254 is a cloud metadata address; set ALLOWED_SOURCE_NETWORKS to allow it.",
        ),
        (
            "http://169.254.10.1:9090",
            "169.254.10.1 is a link-local address; set ALLOWED_SOURCE_NETWORKS to allow it.",
        ),
        (
            "http://0.0.0.0:9090",
            "0.0.0.0 is an unspecified address; set ALLOWED_SOURCE_NETWORKS to allow it.",
        ),
    ],
)
def test_a_url_on_a_refused_address_is_refused_when_saved(org, settings, url, message):
    settings.ALLOWED_SOURCE_NETWORKS = []
    source = MetricSource(organization=org, name="prom", url=url)

    with pytest.raises(ValidationError) as raised:
        source.full_clean()

    assert raised.value.message_dict == {"url": [message]}


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5:9090",
        "http://192.168.1.2:9090",
        "http://[fd12::5]:9090",
        # Names are judged when connecting, on what DNS answers then.
        "http://localhost:9090",
        "http://prometheus:9090",
    ],
)
def test_private_addresses_and_names_are_saved(org, settings, url):
    settings.ALLOWED_SOURCE_NETWORKS = []

    MetricSource(organization=org, name="prom", url=url).full_clean()


def test_an_allowed_network_is_saved(org, settings):
    settings.ALLOWED_SOURCE_NETWORKS = ["127.0.0.0/8"]

    MetricSource(organization=org, name="prom", url="http://127.0.0.1:9090").full_clean()


def test_every_problem_is_reported_at_once(org, settings):
    settings.ALLOWED_SOURCE_NETWORKS = []
    source = MetricSource(
        organization=org, name="prom", url="http://127.0.0.1:9090", auth_header="Bearer 日本"
    )

    with pytest.raises(ValidationError) as raised:
        source.full_clean()

    assert set(raised.value.message_dict) == {"url", "auth_header"}


def test_the_admin_refuses_a_refused_address(client, member, org, settings):
    settings.ALLOWED_SOURCE_NETWORKS = []
    client.force_login(member(org, Role.MANAGER))

    response = client.post(
        "/admin/catalog/metricsource/add/",
        {
            "organization": org.pk,
            "name": "prom",
            "kind": "prometheus",
            "url": "http://[fd00:ec2::254]/",
            "timeout": 5,
        },
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["url"] == [
        "fd00:ec2::254 is a cloud metadata address; set ALLOWED_SOURCE_NETWORKS to allow it."
    ]
    assert not MetricSource.objects.exists()


def test_a_source_saved_before_the_guard_is_refused_when_queried(org, fake, settings):
    settings.ALLOWED_SOURCE_NETWORKS = []
    source = MetricSource.objects.create(organization=org, name="prom", url=fake.url)

    with pytest.raises(SourceUnavailable, match=r"127\.0\.0\.1 is a loopback address"):
        sources.client_for(source).query("up")
    assert fake.requests == []


# The auth header.


@pytest.mark.parametrize(
    ("header", "masked"),
    [
        ("", ""),
        ("Bearer s3cret-token-wxyz", "Bearer ****"),
        ("Basic dXNlcjpwYXNz", "Basic ****"),
        ("bearer wxyz", "bearer ****"),
        # Not a scheme we know: its first word may be the secret itself.
        ("s3cret-wxyz", "****"),
        ("s3cret wxyz", "****"),
        ("Bearer", "****"),
    ],
)
def test_the_masked_header_shows_none_of_the_credential(header, masked):
    assert MetricSource(auth_header=header).masked_auth_header == masked


def test_the_header_goes_to_the_configured_host_only(source, fake):
    # A redirect is not followed, so the header never reaches where it points, even on
    # this very host (another port).
    elsewhere = FakePrometheus()
    try:

        def redirect(handler):
            handler.send_response(302)
            handler.send_header("Location", elsewhere.url + "/api/v1/query")
            handler.send_header("Content-Length", "0")
            handler.end_headers()

        fake.reply = redirect
        with pytest.raises(SourceUnavailable, match="redirects are not followed"):
            sources.client_for(source).query("up")
    finally:
        elsewhere.close()

    assert [r["headers"]["Authorization"] for r in fake.requests] == ["Bearer s3cret"]
    assert elsewhere.requests == []


# Health, and its log lines.


@pytest.fixture
def health_log(caplog):
    caplog.set_level(logging.INFO, logger="controlplane.catalog.sources")

    def lines():
        found = [r for r in caplog.records if r.name == "controlplane.catalog.sources"]
        caplog.clear()
        return found

    return lines


def test_going_down_and_coming_back_are_one_line_each(source, org, health_log):
    started = timezone.now()
    timeout = SourceTimeout(f"Prometheus at {source.url} did not answer within 2 s")

    sources.record_health({source.pk: timeout}, started)
    [down] = health_log()
    assert down.levelname == "WARNING"
    assert down.getMessage() == "metric source prom is down (timeout)"
    assert (down.source, down.source_id) == ("prom", source.pk)
    assert (down.organization, down.organization_id) == ("acme", org.pk)
    assert (down.error_kind, down.error) == ("timeout", timeout.message)

    # Still down: the same evaluation by another worker, the next one, other rules.
    sources.record_health({source.pk: timeout}, started + timedelta(seconds=1))
    sources.record_health(
        {source.pk: SourceUnavailable("unreachable")}, started + timedelta(seconds=2)
    )
    assert health_log() == []

    sources.record_health({source.pk: None}, started + timedelta(seconds=95))
    [back] = health_log()
    assert back.levelname == "INFO"
    assert back.getMessage() == "metric source prom is back after 95 s"
    assert (back.source, back.organization, back.organization_id) == ("prom", "acme", org.pk)
    assert back.down_seconds == 95.0

    sources.record_health({source.pk: None}, started + timedelta(seconds=200))
    assert health_log() == []
    health = SourceHealth.objects.get(source=source)
    assert (health.failing_since, health.last_error) == (None, "")


def test_a_first_answer_is_not_a_recovery(source, health_log):
    sources.record_health({source.pk: None}, timezone.now())

    assert health_log() == []


def test_a_problem_given_as_text_is_logged_as_of_unknown_kind(source, health_log):
    sources.record_health({source.pk: "unreachable"}, timezone.now())

    [down] = health_log()
    assert (down.error_kind, down.error) == ("unknown", "unreachable")
    assert SourceHealth.objects.get(source=source).last_error == "unreachable"


def test_a_recovery_is_written_only_over_the_failure_it_read(source, health_log):
    # Between this worker reading the failure and writing the recovery, others recorded
    # the recovery and a new failure: that new failure stays, and this worker is quiet.
    started = timezone.now()
    sources.record_health({source.pk: SourceUnavailable("down")}, started)
    health_log()
    failing_again = started + timedelta(seconds=3)
    raced = []

    def others_first(execute, sql, params, many, context):
        if sql.startswith("UPDATE") and not raced:
            raced.append(sql)
            SourceHealth.objects.filter(source=source).update(failing_since=failing_again)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(others_first):
        sources.record_health({source.pk: None}, started + timedelta(seconds=5))

    assert raced
    assert health_log() == []
    assert SourceHealth.objects.get(source=source).failing_since == failing_again


def test_the_lines_are_json_with_the_trace_id(source, org):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("controlplane.catalog.sources")
    logger.addHandler(handler)
    try:
        with span("tests.evaluation"):
            sources.record_health({source.pk: SourceTimeout("slow")}, timezone.now())
    finally:
        logger.removeHandler(handler)

    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["message"] == "metric source prom is down (timeout)"
    assert len(line["trace_id"] or "") == 32
    assert (line["source"], line["organization"], line["organization_id"]) == (
        "prom",
        "acme",
        org.pk,
    )
    assert (line["error_kind"], line["error"]) == ("timeout", "slow")
