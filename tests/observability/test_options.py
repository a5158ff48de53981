from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from observability import options
from observability.options import Options


def test_defaults_when_the_setting_is_absent(settings, monkeypatch):
    del settings.OBSERVABILITY
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)

    assert options.load() == Options()


def test_the_otel_environment_fills_keys_the_setting_leaves_out(settings, monkeypatch):
    settings.OBSERVABILITY = {"LOG_SPANS": True}
    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")

    loaded = options.load()

    assert loaded.service_name == "billing"
    assert loaded.otlp_endpoint == "http://collector:4318"
    assert loaded.log_spans is True


def test_explicit_settings_win_over_the_environment(settings, monkeypatch):
    settings.OBSERVABILITY = {"SERVICE_NAME": "controlplane", "OTLP_ENDPOINT": ""}
    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")

    loaded = options.load()

    assert (loaded.service_name, loaded.otlp_endpoint) == ("controlplane", "")


def test_a_none_endpoint_means_none(settings):
    settings.OBSERVABILITY = {"OTLP_ENDPOINT": None}

    assert options.load().otlp_endpoint == ""


def test_misspelt_keys_are_refused(settings):
    settings.OBSERVABILITY = {"ENABLE": False}

    with pytest.raises(ImproperlyConfigured, match="ENABLE"):
        options.load()


def test_the_job_metrics_namespace_is_a_metric_name_prefix(settings):
    settings.OBSERVABILITY = {"JOB_METRICS_NAMESPACE": "billing"}

    assert options.load().job_metrics_namespace == "billing"


@pytest.mark.parametrize("namespace", ["billing-api", "9lives", "billing:", "a b", 42])
def test_a_job_metrics_namespace_prometheus_would_refuse_stops_the_start(settings, namespace):
    settings.OBSERVABILITY = {"JOB_METRICS_NAMESPACE": namespace}

    with pytest.raises(ImproperlyConfigured, match="JOB_METRICS_NAMESPACE"):
        options.load()
