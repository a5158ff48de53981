"""Exemplars: each observation of http_server_request_duration_seconds carries the trace
id of its request, so a slow bucket in Grafana links to the trace, where the exposition
allows it: OpenMetrics, one process. Under PROMETHEUS_MULTIPROC_DIR prometheus_client
keeps no exemplar (its files hold values only); nothing else changes.

Proven end to end: a real Prometheus with exemplar storage scrapes the small project of
tests/observability under gunicorn and answers /api/v1/query_exemplars with the trace id
the request's X-Trace-Id named."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from django.test import Client
from prometheus_client import REGISTRY
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from tests import services, waiting
from tests.integration.prometheus import scrape_config, start_prometheus
from tests.observability.served import gunicorn
from tests.waiting import REQUEST_TIMEOUT

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
HISTOGRAM = "http_server_request_duration_seconds"
ROUTE = "items/<pk>/"
TRACE_ID = re.compile(r"[0-9a-f]{32}")
# A caller's traceparent whose sampled flag is off: the request records no trace.
UNSAMPLED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"


def bucket_exemplars(body: str, route: str) -> dict[str, str]:
    """{le: exemplar trace id} of the histogram's buckets for `route`, from OpenMetrics."""
    found = {}
    for family in text_string_to_metric_families(body):
        if family.name != HISTOGRAM:
            continue
        for sample in family.samples:
            if sample.labels.get("http_route") == route and sample.exemplar is not None:
                found[sample.labels["le"]] = sample.exemplar.labels["trace_id"]
    return found


# In process -----------------------------------------------------------------------------


@pytest.mark.urls("tests.observability.urls")
@pytest.mark.usefixtures("observability_on")
def test_the_observation_carries_the_trace_id_of_its_request(db):
    client = Client()
    response = client.get("/feeds/exemplar.xml")
    trace_id = response["X-Trace-Id"]

    body = client.get("/metrics", HTTP_ACCEPT=OPENMETRICS)

    assert body["Content-Type"].startswith("application/openmetrics-text")
    assert list(bucket_exemplars(body.content.decode(), "feeds/<name>.xml").values()) == [trace_id]
    # The classic text format has no exemplars, and is unchanged.
    plain = client.get("/metrics").content.decode()
    assert "trace_id" not in plain
    assert f'{HISTOGRAM}_count{{http_request_method="GET",http_response_status_code="200"' in plain


@pytest.mark.urls("tests.observability.urls")
@pytest.mark.usefixtures("observability_on")
def test_a_request_whose_trace_is_not_recorded_leaves_no_exemplar(db):
    client = Client()
    response = client.get("/orgs/unsampled/", HTTP_TRACEPARENT=UNSAMPLED)
    assert response.status_code == 200
    observed = REGISTRY.get_sample_value(
        f"{HISTOGRAM}_count",
        {
            "http_request_method": "GET",
            "http_route": "orgs/<organization>/",
            "http_response_status_code": "200",
        },
    )
    assert observed, "the request was observed"

    body = client.get("/metrics", HTTP_ACCEPT=OPENMETRICS).content.decode()

    # A link to a trace nobody kept would lead nowhere.
    assert bucket_exemplars(body, "orgs/<organization>/") == {}


# Served by gunicorn, scraped by Prometheus ------------------------------------------------


@contextmanager
def prometheus_scraping(tmp_path: Path, target: str) -> Iterator[str]:
    port = services.free_port()
    process = start_prometheus(
        tmp_path / "prometheus",
        port,
        scrape_config(target.removeprefix("http://")),
        features=("exemplar-storage",),
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def query_exemplars(prometheus: str, query: str, since: float) -> list[dict]:
    answer = requests.get(
        f"{prometheus}/api/v1/query_exemplars",
        params={"query": query, "start": since, "end": time.time() + 60},
        timeout=REQUEST_TIMEOUT,
    )
    answer.raise_for_status()
    return [e for series in answer.json()["data"] for e in series["exemplars"]]


def scraped(prometheus: str, query: str) -> list[dict]:
    answer = requests.get(
        f"{prometheus}/api/v1/query", params={"query": query}, timeout=REQUEST_TIMEOUT
    )
    answer.raise_for_status()
    return answer.json()["data"]["result"]


def test_prometheus_keeps_the_trace_id_of_a_single_process_server(tmp_path):
    since = time.time() - 60
    with gunicorn(tmp_path, workers=1, multiproc_dir=None) as server:
        response = requests.get(f"{server}/items/7/", timeout=REQUEST_TIMEOUT)
        response.raise_for_status()
        trace_id = response.headers["X-Trace-Id"]
        assert TRACE_ID.fullmatch(trace_id)
        served = requests.get(
            f"{server}/metrics", headers={"Accept": OPENMETRICS}, timeout=REQUEST_TIMEOUT
        )
        assert served.headers["Content-Type"].startswith("application/openmetrics-text")
        assert list(bucket_exemplars(served.text, ROUTE).values()) == [trace_id]

        with prometheus_scraping(tmp_path, server) as prometheus:
            query = f'{HISTOGRAM}_bucket{{http_route="{ROUTE}"}}'
            exemplars = waiting.until(
                lambda: query_exemplars(prometheus, query, since),
                what=f"Prometheus to store an exemplar of {query}",
            )

    assert [exemplar["labels"] for exemplar in exemplars] == [{"trace_id": trace_id}]


def test_multiprocess_serves_openmetrics_without_exemplars(tmp_path):
    since = time.time() - 60
    with gunicorn(tmp_path, workers=2, multiproc_dir=tmp_path / "multiproc") as server:
        trace_ids = set()
        for _ in range(6):
            response = requests.get(f"{server}/items/7/", timeout=REQUEST_TIMEOUT)
            response.raise_for_status()
            trace_ids.add(response.headers["X-Trace-Id"])
        served = requests.get(
            f"{server}/metrics", headers={"Accept": OPENMETRICS}, timeout=REQUEST_TIMEOUT
        )
        assert served.status_code == 200
        assert served.headers["Content-Type"].startswith("application/openmetrics-text")
        assert bucket_exemplars(served.text, ROUTE) == {}
        assert all(TRACE_ID.fullmatch(trace_id) for trace_id in trace_ids)

        with prometheus_scraping(tmp_path, server) as prometheus:
            count = f'sum({HISTOGRAM}_count{{http_route="{ROUTE}"}})'
            waiting.until(
                lambda: [r for r in scraped(prometheus, count) if r["value"][1] == "6"],
                what=f"Prometheus to scrape {count} == 6 from the two workers",
            )
            query = f'{HISTOGRAM}_bucket{{http_route="{ROUTE}"}}'
            assert query_exemplars(prometheus, query, since) == []
