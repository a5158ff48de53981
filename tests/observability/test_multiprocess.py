"""/metrics under gunicorn with several workers reports them all.

prometheus_client decides at import time whether it writes per-process files, so
this needs real processes: a gunicorn of our own with two workers, serving the
small project in tests/observability.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.observability import served
from tests.waiting import REQUEST_TIMEOUT

REQUESTS = 24
WORKERS = 2


@pytest.fixture
def gunicorn(tmp_path):
    with served.gunicorn(tmp_path, WORKERS, tmp_path / "prometheus") as url:
        yield url


def _count(body: str, metric: str, **labels: str) -> float:
    """The sum of the samples of `metric` whose labels include `labels`."""
    total = 0.0
    for line in body.splitlines():
        match = re.fullmatch(rf"{re.escape(metric)}\{{(.*)\}} (\S+)", line)
        if match and labels.items() <= dict(re.findall(r'(\w+)="([^"]*)"', match[1])).items():
            total += float(match[2])
    return total


def test_metrics_add_up_across_workers(gunicorn):
    # Each request holds its worker for a moment, so eight at a time need both.
    def call(_: int) -> int:
        response = requests.get(
            f"{gunicorn}/pid/", params={"sleep": "0.05"}, timeout=REQUEST_TIMEOUT
        )
        response.raise_for_status()
        requests.get(f"{gunicorn}/job/", timeout=REQUEST_TIMEOUT).raise_for_status()
        return response.json()["pid"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        pids = set(pool.map(call, range(REQUESTS)))

    ours = requests.get(f"{gunicorn}/metrics", timeout=REQUEST_TIMEOUT).text
    # django_prometheus' view reads the same files, for projects that route to it.
    theirs = requests.get(f"{gunicorn}/django-prometheus/metrics", timeout=REQUEST_TIMEOUT).text

    assert len(pids) == WORKERS, "both workers should have served requests"
    http = {"http_route": "pid/", "http_response_status_code": "200"}
    for body in (ours, theirs):
        assert _count(body, "http_server_request_duration_seconds_count", **http) == REQUESTS
    job = {"job": "tests.job", "result": "success"}
    assert _count(ours, "job_runs_total", **job) == REQUESTS
    stamps = [
        line
        for line in ours.splitlines()
        if line.startswith('job_last_success_timestamp_seconds{job="tests.job"}')
    ]
    assert len(stamps) == 1, "a max-mode gauge is one series, not one per worker"
