"""Every PromQL target of the generated dashboards parses in a real Prometheus
(/api/v1/format_query) and names only series the control plane's /metrics declares or
the SLO recording rules record."""

from __future__ import annotations

import pytest
import requests
from django.test import Client

from controlplane.promql.client import BadQuery, PrometheusClient
from controlplane.slo import rules
from observability.jobs import job_run
from tests.dashboards import promql_names, samples

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


class Formatter:
    """Prometheus' /api/v1/format_query: the query formatted, or BadQuery with its words."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = PrometheusClient(url, timeout=10)

    def format(self, expr: str) -> str:
        self.client.validate(expr)  # BadQuery with Prometheus' words when it does not parse
        answer = requests.get(f"{self.url}/api/v1/format_query", params={"query": expr}, timeout=10)
        return answer.json()["data"]


@pytest.fixture(scope="module")
def prometheus(prometheus_factory) -> Formatter:
    return Formatter(prometheus_factory({}).url)


@pytest.fixture
def known_series() -> set[str]:
    """Names from a running control plane's /metrics, once the beat job instruments have
    written (observability.jobs creates its families at the first run), and the names the
    SLO rules record."""
    with job_run("dashboards.test"):
        pass
    response = Client(HTTP_HOST="localhost").get("/metrics")
    assert response.status_code == 200
    names = promql_names.exported_names(response.content.decode())
    doc = rules.rule_groups(samples.DEFINITIONS, samples.AT)
    recorded = {
        rule["record"] for group in doc["groups"] for rule in group["rules"] if "record" in rule
    }
    return names | recorded


def unknown_names(prometheus: Formatter, known: set[str], expr: str) -> set[str]:
    formatted = prometheus.format(expr)
    return promql_names.series_names(formatted) - known


def test_every_target_parses_and_names_known_series(prometheus, known_series):
    targets = samples.prometheus_targets(samples.exported().dashboards)
    assert len(targets) > 60  # every dashboard's panels, not an empty list
    problems = []
    for name, where, expr in targets:
        sent = samples.substitute(expr)
        try:
            unknown = unknown_names(prometheus, known_series, sent)
        except BadQuery as error:
            problems.append(f"{name} / {where}: does not parse: {error.message}\n  {sent}")
            continue
        if unknown:
            problems.append(f"{name} / {where}: unknown series {sorted(unknown)}\n  {sent}")
    assert not problems, "\n".join(problems)


def test_the_series_the_issue_names_are_exported(known_series):
    for name in (
        "celery_queue_length",
        "controlplane_job_duration_limit_seconds",
        "controlplane_job_rpo_seconds",
        "http_server_request_duration_seconds_bucket",
        "controlplane_notification_delivery_seconds_bucket",
        "job_runs_total",
    ):
        assert name in known_series, f"{name} is not on /metrics"


def test_the_checker_refuses_an_unknown_series_and_a_bad_query(prometheus, known_series):
    assert unknown_names(
        prometheus, known_series, 'sum(rate(controlplane_no_such_thing_total{job=~".*"}[5m]))'
    ) == {"controlplane_no_such_thing_total"}
    assert (
        unknown_names(
            prometheus, known_series, "max(controlplane_jobs_overdue) / on() group_left vector(1)"
        )
        == set()
    )
    with pytest.raises(BadQuery):
        prometheus.format(samples.substitute("rate(controlplane_jobs_overdue[$unknown_var])"))


@pytest.mark.parametrize(
    ("formatted", "names"),
    [
        ('sum by (le) (rate(a_bucket{le="0.2",x=~"b|c"}[5m]))', {"a_bucket"}),
        ("histogram_quantile(0.95, sum by (job, le) (increase(d[1d])))", {"d"}),
        ('time() - e{job=~".*"} > 1e3', {"e"}),
        ("f / on (slo) group_left (x) g or vector(0.999)", {"f", "g"}),
        ('{__name__=~"slo:a|slo:b",organization="x"}', {"slo:a", "slo:b"}),
        ('sum_over_time(slo:x:y{slo="a"}[4w1d23h59m59s999ms])', {"slo:x:y"}),
    ],
)
def test_series_names_are_read_from_formatted_queries(formatted, names):
    assert promql_names.series_names(formatted) == names
