"""The client and the rule core against a real Prometheus serving data with known values."""

import math
from datetime import timedelta

import pytest

from controlplane.alerting.states import breaching, by_fingerprint, rule_state, step
from controlplane.promql.client import (
    BadQuery,
    PrometheusClient,
    QueryFailed,
    SourceUnavailable,
)
from tests.integration import prometheus as fixtures
from tests.integration.prometheus import T0, PrometheusServer, series_key, write_openmetrics

pytestmark = pytest.mark.integration

START = T0.timestamp()
AT = T0 + timedelta(minutes=20)
EVERY = 15  # seconds between samples
STEPS = range(0, 30 * 60 // EVERY + 1)  # thirty minutes of data

HISTOGRAM = "http_server_request_duration_seconds"
ROUTE = {"http_request_method": "GET", "http_route": "/api/v1/slos/"}
# Requests added every 15 s, per status code, as cumulative bucket counts.
PER_STEP = {
    "200": {"0.1": 30, "0.2": 44, "0.5": 48, "+Inf": 49, "sum": 4.9},
    "500": {"0.1": 0, "0.2": 0, "0.5": 1, "+Inf": 1, "sum": 0.4},
}


def known_series() -> dict:
    series = {
        # A gauge whose value is the minute since T0.
        series_key("controlplane_queue_backlog", {"queue": "calendar"}): [
            (START + 60 * minute, minute) for minute in range(31)
        ],
        # A counter growing by 3 every 15 s: rate 0.2/s.
        series_key("controlplane_job_runs_total", {"job": "etl", "result": "success"}): [
            (START + EVERY * n, 3 * n) for n in STEPS
        ],
    }
    for status, added in PER_STEP.items():
        labels = {**ROUTE, "http_response_status_code": status}
        for le in ("0.1", "0.2", "0.5", "+Inf"):
            series[series_key(f"{HISTOGRAM}_bucket", {**labels, "le": le})] = [
                (START + EVERY * n, added[le] * n) for n in STEPS
            ]
        series[series_key(f"{HISTOGRAM}_count", labels)] = [
            (START + EVERY * n, added["+Inf"] * n) for n in STEPS
        ]
        series[series_key(f"{HISTOGRAM}_sum", labels)] = [
            (START + EVERY * n, added["sum"] * n) for n in STEPS
        ]
    return series


prometheus_factory = fixtures.prometheus_factory


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    with PrometheusServer.with_data(
        tmp_path_factory.mktemp("prometheus"), known_series(), types={HISTOGRAM: "histogram"}
    ) as server:
        yield server


@pytest.fixture
def client(prometheus):
    prometheus.start()  # in case a test stopped it
    return PrometheusClient(prometheus.url, timeout=5)


def values(samples) -> dict:
    return {tuple(sorted(s.labels.items())): s.value for s in samples}


def test_starts_in_a_couple_of_seconds(prometheus):
    assert prometheus.startup_seconds < 3


def test_a_gauge_at_a_fixed_time_is_the_known_value(client):
    [sample] = client.query('controlplane_queue_backlog{queue="calendar"}', at=AT)
    assert sample.value == 20.0
    assert sample.timestamp == AT.timestamp()
    assert sample.labels == {"__name__": "controlplane_queue_backlog", "queue": "calendar"}
    # Between samples, the latest one counts.
    [later] = client.query("controlplane_queue_backlog", at=AT + timedelta(seconds=59))
    assert later.value == 20.0


def test_rate_and_increase_of_a_counter(client):
    [rate] = client.query("rate(controlplane_job_runs_total[5m])", at=AT)
    assert rate.value == pytest.approx(0.2, rel=1e-12)
    [increase] = client.query("increase(controlplane_job_runs_total[10m])", at=AT)
    assert increase.value == pytest.approx(120.0, rel=1e-12)


def test_the_built_in_api_rules_read_known_values(client):
    share_5xx = client.query(
        f'sum(rate({HISTOGRAM}_count{{http_response_status_code=~"5.."}}[5m]))'
        f" / sum(rate({HISTOGRAM}_count[5m]))",
        at=AT,
    )
    assert [s.value for s in share_5xx] == [pytest.approx(1 / 50, rel=1e-12)]
    p95 = client.query(
        f"histogram_quantile(0.95, sum by (le) (rate({HISTOGRAM}_bucket[5m])))", at=AT
    )
    # Rank 47.5 of 50 falls in (0.2, 0.5], which holds requests 45..49.
    assert [s.value for s in p95] == [pytest.approx(0.2 + 0.3 * (47.5 - 44) / 5, rel=1e-12)]


def test_a_rule_fires_on_what_prometheus_answers(client):
    expr = f"sum by (http_response_status_code) (rate({HISTOGRAM}_count[5m]))"
    instances: dict = {}
    kinds = []
    for minute in (20, 21, 22):
        samples = client.query(expr, at=T0 + timedelta(minutes=minute))
        hot = by_fingerprint("busy", breaching(samples, ">", 3.0))  # 200s: 49/15 per second
        instances, transitions = step(
            instances, hot, T0 + timedelta(minutes=minute), timedelta(minutes=1), timedelta(0)
        )
        kinds.append([(t.kind, dict(t.labels)) for t in transitions])
    code_200 = {"http_response_status_code": "200"}
    assert kinds == [[("pending", code_200)], [("firing", code_200)], []]
    assert rule_state(instances) == "firing"
    [instance] = instances.values()
    assert instance.value == pytest.approx(49 / 15, rel=1e-12)


def test_query_range_returns_every_step(client):
    [series] = client.query_range(
        'controlplane_queue_backlog{queue="calendar"}', T0, T0 + timedelta(minutes=5), 60
    )
    assert series.points == tuple((START + 60 * m, float(m)) for m in range(6))


def test_nan_and_infinities_come_back_as_floats(client):
    [nan] = client.query("0/0", at=AT)
    [inf] = client.query("1/0", at=AT)
    [minus_inf] = client.query("-1/0", at=AT)
    assert math.isnan(nan.value)
    assert nan.labels == {}
    assert (inf.value, minus_inf.value) == (math.inf, -math.inf)
    [vector_nan] = client.query("vector(0) / 0", at=AT)
    assert math.isnan(vector_nan.value)
    # As in a Prometheus rule, a series present fires whatever its value ...
    assert breaching([nan, vector_nan], None, None) == [nan, vector_nan]
    # ... and a comparison on NaN is IEEE's.
    assert breaching([nan, vector_nan], ">", 1.0) == []
    assert breaching([nan], "!=", 1.0) == [nan]


def test_before_the_data_there_is_nothing(client):
    assert client.query("controlplane_queue_backlog", at=T0 - timedelta(hours=1)) == []
    assert client.query("controlplane_queue_backlog") == []  # now is long after the data


def test_validate_passes_prometheus_parse_error_through(client):
    with pytest.raises(BadQuery, match="unclosed left parenthesis") as raised:
        client.validate("sum(rate(x[5m])")
    assert raised.value.message.startswith('invalid parameter "query": 1:16: parse error')
    client.validate("sum(rate(x[5m]))")


def test_an_execution_error_is_query_failed(client):
    # Only its kind: what else the source says is not relayed (docs/alerting.md).
    with pytest.raises(QueryFailed, match=r"could not run the query \(execution error\)"):
        client.query('label_replace(vector(1), "x", "a", "y", "(")', at=AT)


def test_results_that_are_no_condition_are_bad_queries(client):
    with pytest.raises(BadQuery, match="returns a string"):
        client.query('"abc"', at=AT)
    with pytest.raises(BadQuery, match="range vector"):
        client.query("controlplane_queue_backlog[5m]", at=AT)


def test_buildinfo_names_the_version(client):
    assert client.buildinfo()["version"].startswith("2.")


def test_a_stopped_prometheus_is_unavailable_and_comes_back(prometheus, client):
    prometheus.stop()
    try:
        with pytest.raises(SourceUnavailable, match="unreachable"):
            client.query("controlplane_queue_backlog", at=AT)
    finally:
        prometheus.start()
    [sample] = client.query('controlplane_queue_backlog{queue="calendar"}', at=AT)
    assert sample.value == 20.0


# The fixture's own pieces.


def test_the_session_factory_serves_the_data_it_is_given(prometheus_factory):
    server = prometheus_factory(
        {series_key("up", {"job": "x"}): [(T0, 1), (T0 + timedelta(minutes=1), 0)]}
    )
    client = PrometheusClient(server.url)
    assert [s.value for s in client.query("up", at=T0 + timedelta(seconds=30))] == [1.0]
    assert [s.value for s in client.query("up", at=T0 + timedelta(minutes=1))] == [0.0]


def test_openmetrics_text_sorts_samples_and_declares_types():
    text = write_openmetrics(
        {
            "jobs_total": [(20, 2), (10, 1)],
            series_key("g", {"path": 'a"b\\c'}): [(T0, math.nan)],
        }
    )
    assert text == (
        "# TYPE jobs counter\n"
        "jobs_total 1.0 10.000\n"
        "jobs_total 2.0 20.000\n"
        "# TYPE g gauge\n"
        f'g{{path="a\\"b\\\\c"}} NaN {START:.3f}\n'
        "# EOF\n"
    )


def test_openmetrics_text_refuses_two_samples_at_one_time():
    with pytest.raises(ValueError, match="two samples"):
        write_openmetrics({"g": [(10, 1), (10, 2)]})
