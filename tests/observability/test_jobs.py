from __future__ import annotations

import time

import pytest
from opentelemetry.trace import StatusCode
from prometheus_client import REGISTRY

from observability import context
from observability.jobs import job_run


@pytest.fixture(autouse=True)
def _package_names(observability_on) -> None:
    """No JOB_METRICS_NAMESPACE: the package's own names, whatever the project sets."""


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_successful_run_is_counted_timed_and_stamped(spans):
    before_ok = sample("job_runs_total", job="tests.ok", result="success")
    before_count = sample("job_run_duration_seconds_count", job="tests.ok")
    started = time.time()

    with job_run("tests.ok"):
        pass

    assert sample("job_runs_total", job="tests.ok", result="success") == before_ok + 1
    assert sample("job_runs_total", job="tests.ok", result="failure") == 0
    assert sample("job_run_duration_seconds_count", job="tests.ok") == before_count + 1
    stamp = sample("job_last_success_timestamp_seconds", job="tests.ok")
    assert started <= stamp <= time.time()
    [finished] = spans.get_finished_spans()
    assert finished.name == "tests.ok"
    assert finished.attributes["app.job"] == "tests.ok"


def test_a_failed_run_is_counted_and_reraised_without_a_success_stamp(spans):
    before = sample("job_runs_total", job="tests.fail", result="failure")

    with pytest.raises(KeyError), job_run("tests.fail"):
        raise KeyError("missing")

    assert sample("job_runs_total", job="tests.fail", result="failure") == before + 1
    assert sample("job_runs_total", job="tests.fail", result="success") == 0
    assert sample("job_last_success_timestamp_seconds", job="tests.fail") == 0
    assert sample("job_run_duration_seconds_count", job="tests.fail") >= 1
    [finished] = spans.get_finished_spans()
    assert finished.status.status_code == StatusCode.ERROR


def test_job_run_decorates_functions_each_call_a_run(spans):
    @job_run("tests.decorated")
    def purge(rows: int) -> int:
        return rows * 2

    before = sample("job_runs_total", job="tests.decorated", result="success")

    assert purge(2) == 4
    assert purge(3) == 6

    after = sample("job_runs_total", job="tests.decorated", result="success")
    assert after == before + 2
    assert len(spans.get_finished_spans()) == 2


def test_the_job_span_carries_the_audit_context_and_extra_attributes(spans):
    with context.scope(user_id="5"), job_run("tests.attrs", rows=10):
        pass

    [finished] = spans.get_finished_spans()
    assert finished.attributes["enduser.id"] == "5"
    assert finished.attributes["rows"] == 10


def test_the_service_names_its_job_metrics_with_a_namespace(settings, spans):
    settings.OBSERVABILITY = {**settings.OBSERVABILITY, "JOB_METRICS_NAMESPACE": "tests_billing"}

    with job_run("tests.namespaced"):
        pass

    labels = {"job": "tests.namespaced"}
    assert sample("tests_billing_job_runs_total", **labels, result="success") == 1
    assert sample("tests_billing_job_run_duration_seconds_count", **labels) == 1
    assert sample("tests_billing_job_last_success_timestamp_seconds", **labels) > 0
    assert sample("job_runs_total", **labels, result="success") == 0
