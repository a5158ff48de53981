from __future__ import annotations

import pytest
from django.test import Client
from prometheus_client import Counter, Gauge, Histogram

from observability import metrics

pytestmark = pytest.mark.urls("tests.observability.urls")

DECLARED = {
    "http_server_request_duration_seconds": (
        Histogram,
        ("http_request_method", "http_route", "http_response_status_code"),
    ),
    "controlplane_job_runs": (Counter, ("job", "result")),
    "controlplane_job_run_duration_seconds": (Histogram, ("job",)),
    "controlplane_job_last_success_timestamp_seconds": (Gauge, ("job",)),
    "controlplane_calendar_sync_delay_seconds": (Gauge, ("calendar",)),
    "controlplane_calendar_queue_backlog": (Gauge, ()),
    "controlplane_queue_backlog": (Gauge, ("queue",)),
    "controlplane_rule_evaluations": (Counter, ("result",)),
    "controlplane_rule_evaluation_duration_seconds": (Histogram, ()),
    "controlplane_alerts_firing": (Gauge, ("severity",)),
    "controlplane_notifications": (Counter, ("channel_kind", "result")),
}


def declared() -> dict[str, object]:
    found = (getattr(metrics, name) for name in dir(metrics))
    kinds = (Counter, Gauge, Histogram)
    return {metric._name: metric for metric in found if isinstance(metric, kinds)}


def test_the_agreed_metrics_are_declared_with_their_labels():
    by_name = declared()

    assert set(by_name) == set(DECLARED)
    for name, (kind, labels) in DECLARED.items():
        assert isinstance(by_name[name], kind), name
        assert by_name[name]._labelnames == labels, name


def test_every_gauge_says_how_processes_combine():
    gauges = [metric for metric in declared().values() if isinstance(metric, Gauge)]

    assert gauges
    for gauge in gauges:
        assert gauge._multiprocess_mode in {"max", "mostrecent", "livesum", "livemostrecent"}


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
    assert "controlplane_job_runs_total" in body or "controlplane_job_runs" in body


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
