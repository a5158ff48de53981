"""/metrics behind an optional bearer token (OBSERVABILITY["METRICS_TOKEN"])."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from observability import options
from observability.views import authorized
from tests.observability.conftest import OBSERVABILITY_ON

pytestmark = pytest.mark.urls("tests.observability.urls")

TOKEN = "scrape-token-0123456789abcdef"


@pytest.fixture
def with_token(settings) -> str:
    settings.OBSERVABILITY = {**OBSERVABILITY_ON, "METRICS_TOKEN": TOKEN}
    return TOKEN


def test_without_a_token_set_metrics_are_open(settings):
    settings.OBSERVABILITY = dict(OBSERVABILITY_ON)

    assert Client().get("/metrics").status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        f"Basic {TOKEN}",
        "Bearer ",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN.upper()}",
        TOKEN,
    ],
)
def test_with_a_token_set_a_request_without_it_is_refused(with_token, header):
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}

    response = Client().get("/metrics", **extra)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"http_server_request_duration_seconds" not in response.content
    assert TOKEN.encode() not in response.content


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_with_a_token_set_prometheus_sending_it_gets_the_metrics(with_token, scheme):
    # Prometheus' scrape config: authorization: {credentials: <token>} sends "Bearer <token>".
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"{scheme} {with_token}")

    assert response.status_code == 200
    assert b"# TYPE http_server_request_duration_seconds histogram" in response.content


def test_the_comparison_is_exact():
    assert authorized("Bearer abc", "")  # no token: open
    assert authorized("Bearer abc", "abc")
    assert not authorized("Bearer abcd", "abc")
    assert not authorized("Bearer ab", "abc")
    assert not authorized("Token abc", "abc")
    assert not authorized("Bearer é", "abc")


@pytest.mark.parametrize("token", ["has space", "new\nline", 'quote"', 12345])
def test_a_token_no_header_could_carry_stops_the_start_without_echoing_it(settings, token):
    settings.OBSERVABILITY = {"METRICS_TOKEN": token}

    with pytest.raises(ImproperlyConfigured, match="METRICS_TOKEN") as raised:
        options.load()

    assert str(token) not in str(raised.value)
