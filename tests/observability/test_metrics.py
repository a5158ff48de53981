from __future__ import annotations

import pytest
from django.test import Client
from prometheus_client import Counter, Gauge, Histogram

from observability import metrics

pytestmark = pytest.mark.urls("tests.observability.urls")


def module_level() -> list[object]:
    found = (getattr(metrics, name) for name in dir(metrics))
    return [metric for metric in found if isinstance(metric, (Counter, Gauge, Histogram))]


def test_the_http_histogram_is_labelled_by_method_route_and_status():
    histogram = metrics.http_server_request_duration_seconds

    assert isinstance(histogram, Histogram)
    assert histogram._name == "http_server_request_duration_seconds"
    assert histogram._labelnames == (
        "http_request_method",
        "http_route",
        "http_response_status_code",
    )


@pytest.mark.parametrize(("namespace", "prefix"), [("", ""), ("tests_billing", "tests_billing_")])
def test_the_job_instruments_take_the_namespace_they_are_given(namespace, prefix):
    job = metrics.job_metrics(namespace)

    # prometheus_client keeps a counter's name without its `_total`.
    assert (job.runs._name, job.runs._labelnames) == (f"{prefix}job_runs", ("job", "result"))
    assert (job.duration._name, job.duration._labelnames) == (
        f"{prefix}job_run_duration_seconds",
        ("job",),
    )
    assert (job.last_success._name, job.last_success._labelnames) == (
        f"{prefix}job_last_success_timestamp_seconds",
        ("job",),
    )
    assert metrics.job_metrics(namespace) is job, "declared once, then reused"


def test_every_gauge_says_how_processes_combine():
    gauges = [metric for metric in module_level() if isinstance(metric, Gauge)]
    gauges.append(metrics.job_metrics().last_success)

    for gauge in gauges:
        assert gauge._multiprocess_mode in {"max", "mostrecent", "livesum", "livemostrecent"}
    # A timestamp: the latest success of any process is the job's latest success.
    assert metrics.job_metrics().last_success._multiprocess_mode == "max"


def test_the_http_histogram_has_the_agreed_buckets():
    assert metrics.HTTP_DURATION_BUCKETS == (
        0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2.5, 5, 10
    )  # fmt: skip


def test_the_metrics_view_exposes_the_default_registry(observability_on):
    Client().get("/items/7/")

    response = Client().get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    body = response.content.decode()
    assert "# TYPE http_server_request_duration_seconds histogram" in body
    assert 'http_route="items/<pk>/"' in body


def test_the_metrics_view_speaks_openmetrics_when_asked():
    accept = "application/openmetrics-text; version=1.0.0"

    response = Client().get("/metrics", HTTP_ACCEPT=accept)

    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().rstrip().endswith("# EOF")


def test_the_metrics_view_only_reads():
    assert Client().post("/metrics").status_code == 405


@pytest.mark.parametrize("hook", ["gunicorn", "celery"])
def test_a_dead_process_takes_its_live_gauges_along(hook, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from observability import celery, gunicorn

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name in ("gauge_livesum_4242.db", "gauge_max_4242.db", "counter_4242.db"):
        (tmp_path / name).write_bytes(b"")

    if hook == "gunicorn":
        gunicorn.child_exit(server=None, worker=SimpleNamespace(pid=4242))
    else:
        celery.forget_dead_process(pid=4242, exitcode=0)

    # Totals of a dead process still count; only its live-only gauges go.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_4242.db", "gauge_max_4242.db"]
