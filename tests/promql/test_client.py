"""The client against a real HTTP server on loopback that answers whatever a test says."""

import json
import math
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controlplane.promql.client import (
    BadQuery,
    Labels,
    PrometheusClient,
    QueryFailed,
    Sample,
    Series,
    SourceError,
    SourceTimeout,
    SourceUnavailable,
)
from tests.promql.fake import vector
from tests.services import free_port


@pytest.fixture
def client(fake):
    return PrometheusClient(fake.url, timeout=2)


# Reading answers.


def test_reads_a_vector_with_prometheus_special_values(fake, client):
    fake.answer(
        200,
        vector(
            {"metric": {"__name__": "up", "job": "api"}, "value": [1767225600, "1"]},
            {"metric": {"job": "a"}, "value": [1767225600.5, "NaN"]},
            {"metric": {"job": "b"}, "value": [1767225600, "+Inf"]},
            {"metric": {"job": "c"}, "value": [1767225600, "-Inf"]},
        ),
    )
    first, nan, inf, minus_inf = client.query("up")
    assert first == Sample(Labels({"__name__": "up", "job": "api"}), 1.0, 1767225600.0)
    assert first.labels["job"] == "api"
    assert math.isnan(nan.value)
    assert nan.timestamp == 1767225600.5
    assert inf.value == math.inf
    assert minus_inf.value == -math.inf


def test_a_scalar_is_one_sample_without_labels(fake, client):
    fake.answer(
        200, {"status": "success", "data": {"resultType": "scalar", "result": [17.0, "0.5"]}}
    )
    assert client.query("0.5") == [Sample(Labels(), 0.5, 17.0)]


def test_an_empty_vector_is_no_samples(fake, client):
    fake.answer(200, vector())
    assert client.query("absent") == []


def test_a_string_result_is_a_bad_query(fake, client):
    fake.answer(200, {"status": "success", "data": {"resultType": "string", "result": [1, "x"]}})
    with pytest.raises(BadQuery, match="returns a string"):
        client.query('"x"')


def test_a_range_vector_from_an_instant_query_is_a_bad_query(fake, client):
    fake.answer(200, {"status": "success", "data": {"resultType": "matrix", "result": []}})
    with pytest.raises(BadQuery, match=r"range vector; wrap it in a function such as rate\(\)"):
        client.query("up[5m]")


def test_query_range_reads_series(fake, client):
    fake.answer(
        200,
        {
            "status": "success",
            "data": {
                "resultType": "matrix",
                "result": [{"metric": {"job": "api"}, "values": [[10, "1"], [70, "NaN"]]}],
            },
        },
    )
    [series] = client.query_range("up", 10.0, 70.0, timedelta(minutes=1))
    assert series.labels == {"job": "api"}
    assert series.points[0] == (10.0, 1.0)
    assert math.isnan(series.points[1][1])
    assert isinstance(series, Series)
    assert fake.requests[-1]["params"]["step"] == "60.0"


def test_labels_are_hashable_and_equal_to_plain_dicts():
    assert Labels({"a": "1", "b": "2"}) == {"b": "2", "a": "1"}
    assert hash(Labels({"a": "1", "b": "2"})) == hash(Labels({"b": "2", "a": "1"}))
    assert len({Labels({"a": "1"}), Labels({"a": "1"})}) == 1


# What goes on the wire.


def test_query_is_a_post_form_with_time_and_timeout(fake):
    client = PrometheusClient(fake.url + "/prefix/", timeout=3.5, headers={"X-Scope-OrgID": "acme"})
    client.query("sum(rate(x[5m])) > 0.01", at=datetime(2026, 1, 1, tzinfo=UTC))
    request = fake.requests[-1]
    assert request["method"] == "POST"
    assert request["path"] == "/prefix/api/v1/query"
    assert request["params"] == {
        "query": "sum(rate(x[5m])) > 0.01",
        "time": "1767225600.000",
        "timeout": "3.5",
    }
    assert request["headers"]["X-Scope-OrgID"] == "acme"


def test_a_very_long_expression_still_goes_through(fake, client):
    expr = " or ".join(f'up{{job="service-{n}"}}' for n in range(2000))
    client.query(expr)
    assert fake.requests[-1]["params"]["query"] == expr


def test_naive_datetimes_are_refused():
    client = PrometheusClient("http://127.0.0.1:9")
    with pytest.raises(ValueError, match="timezone-aware"):
        client.query("up", at=datetime(2026, 1, 1))


# Prometheus errors.


@pytest.mark.parametrize(
    ("status", "error_type", "error_class"),
    [
        (400, "bad_data", BadQuery),
        (422, "execution", QueryFailed),
        (503, "timeout", SourceTimeout),
        (499, "canceled", SourceUnavailable),
        (500, "internal", SourceUnavailable),
        (503, "unavailable", SourceUnavailable),
        (200, "bad_data", BadQuery),  # a 200 that says error is still an error
        (200, "internal", SourceUnavailable),
        (400, None, SourceUnavailable),
    ],
)
def test_prometheus_errors_map_to_source_errors(fake, client, status, error_type, error_class):
    payload = {"status": "error", "error": "something precise"}
    if error_type:
        payload["errorType"] = error_type
    fake.answer(status, payload)
    with pytest.raises(error_class, match="something precise") as raised:
        client.query("up")
    assert type(raised.value) is error_class


def test_a_bad_query_carries_prometheus_own_words(fake, client):
    message = 'invalid parameter "query": 1:16: parse error: unclosed left parenthesis'
    fake.answer(400, {"status": "error", "errorType": "bad_data", "error": message})
    with pytest.raises(BadQuery) as raised:
        client.validate("sum(rate(x[5m])")
    assert raised.value.message == message
    request = fake.requests[-1]
    assert (request["method"], request["path"]) == ("GET", "/api/v1/format_query")
    assert request["params"] == {"query": "sum(rate(x[5m])"}


def test_validate_accepts_what_prometheus_formats(fake, client):
    fake.answer(200, {"status": "success", "data": "sum(rate(x[5m]))"})
    assert client.validate("sum(rate(x[5m]))") is None


def test_validate_against_an_old_prometheus_says_why(fake, client):
    fake.reply = fake.raw(404, b"404 page not found", "text/plain")
    with pytest.raises(SourceUnavailable, match=r"needs Prometheus 2\.38 or later"):
        client.validate("up")


def test_buildinfo(fake, client):
    fake.answer(200, {"status": "success", "data": {"version": "2.42.0", "revision": "x"}})
    assert client.buildinfo()["version"] == "2.42.0"


# Answers that are not Prometheus answers.


@pytest.mark.parametrize(
    ("status", "body", "content_type", "message"),
    [
        (
            200,
            b"<html><body>Login</body></html>",
            "text/html",
            r"not its API \(text/html, HTTP 200\)",
        ),
        (503, b"<html>Service Unavailable</html>", "text/html", "HTTP 503"),
        (502, b"", "text/plain", "HTTP 502"),
        (
            200,
            b'{"status": "success", "data": {"resultType": "vec',
            "application/json",
            "not its API",
        ),
        (200, b"", "application/json", "not its API"),
        (200, b"[1, 2]", "application/json", "not its API"),
        (200, b'{"status": "maybe"}', "application/json", "not its API"),
        (200, b"[" * 100000 + b"]" * 100000, "application/json", "not its API"),
        (500, json.dumps(vector()).encode(), "application/json", "HTTP 500"),
    ],
)
def test_garbage_is_source_unavailable(fake, client, status, body, content_type, message):
    fake.reply = fake.raw(status, body, content_type)
    with pytest.raises(SourceUnavailable, match=message):
        client.query("up")


def test_the_body_of_a_foreign_answer_is_never_quoted(fake, client):
    # A source URL aimed at another internal service must not become a way to read it.
    fake.reply = fake.raw(200, b"<html>secret-internal-page</html>", "text/html")
    with pytest.raises(SourceUnavailable) as raised:
        client.query("up")
    assert "secret" not in raised.value.message


def test_an_overflowing_number_is_a_source_error(fake, client):
    fake.reply = fake.raw(
        200,
        b'{"status": "success", "data": {"resultType": "vector", "result": '
        b'[{"metric": {}, "value": [1, ' + b"9" * 400 + b"]}]}}",
    )
    with pytest.raises(SourceUnavailable, match="not a"):
        client.query("up")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "no resultType"),
        ({"resultType": "vector"}, "no resultType"),
        ({"resultType": "vector", "result": {}}, "not a list of series"),
        ({"resultType": "vector", "result": [1]}, "not a list of series"),
        ({"resultType": "vector", "result": [{"value": [1, "1"]}]}, "no metric labels"),
        (
            {"resultType": "vector", "result": [{"metric": {"a": 1}, "value": [1, "1"]}]},
            "no metric labels",
        ),
        ({"resultType": "vector", "result": [{"metric": {}}]}, "not a \\[timestamp, value\\] pair"),
        ({"resultType": "vector", "result": [{"metric": {}, "value": [1]}]}, "pair"),
        ({"resultType": "vector", "result": [{"metric": {}, "value": ["1", "1"]}]}, "timestamp"),
        ({"resultType": "vector", "result": [{"metric": {}, "value": [1, "one"]}]}, "not a number"),
        ({"resultType": "vector", "result": [{"metric": {}, "value": [1, None]}]}, "not a number"),
        ({"resultType": "vector", "result": [{"metric": {}, "value": [1, True]}]}, "not a number"),
        ({"resultType": "scalar", "result": "1"}, "pair"),
        ({"resultType": "histogram", "result": []}, "unknown resultType"),
    ],
)
def test_unexpected_shapes_are_source_unavailable(fake, client, data, message):
    fake.answer(200, {"status": "success", "data": data})
    with pytest.raises(SourceUnavailable, match=message):
        client.query("up")


def test_a_missing_data_field_is_source_unavailable(fake, client):
    fake.answer(200, {"status": "success"})
    with pytest.raises(SourceUnavailable, match="no data"):
        client.query("up")


def test_a_range_query_must_answer_a_matrix(fake, client):
    fake.answer(200, vector())
    with pytest.raises(SourceUnavailable, match="resultType 'vector'"):
        client.query_range("up", 0, 60, 15)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
envelopes = st.fixed_dictionaries(
    {"status": st.sampled_from(["success", "error"])},
    optional={
        "data": json_values
        | st.fixed_dictionaries(
            {
                "resultType": st.sampled_from(["vector", "matrix", "scalar", "string"]),
                "result": json_values,
            }
        ),
        "errorType": json_values,
        "error": json_values,
        "warnings": json_values,
    },
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(envelope=envelopes, status=st.sampled_from([200, 400, 422, 500, 503]))
def test_any_answer_gives_samples_or_a_source_error(fake, client, envelope, status):
    fake.answer(status, envelope)
    try:
        samples = client.query("up")
        client.query_range("up", 0, 60, 15)
    except SourceError as error:
        message = error.message
    else:
        message = None
        assert all(isinstance(s.value, float) for s in samples)
    assert message != ""


# Connections that fail.


def test_a_closed_port_is_source_unavailable():
    client = PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(SourceUnavailable, match=r"is unreachable: .*Connection refused"):
        client.query("up")


def test_credentials_in_the_url_stay_out_of_messages():
    port = free_port()
    client = PrometheusClient(f"http://reader:s3cret@127.0.0.1:{port}", timeout=2)
    with pytest.raises(SourceUnavailable) as raised:
        client.query("up")
    assert f"Prometheus at http://127.0.0.1:{port} is unreachable" in raised.value.message
    assert "s3cret" not in str(raised.value)


def test_an_unresolvable_host_is_source_unavailable():
    client = PrometheusClient("http://prometheus.invalid:9090", timeout=2)
    with pytest.raises(SourceUnavailable, match="unreachable"):
        client.query("up")


def test_a_server_that_sleeps_past_the_timeout_is_a_timeout(fake):
    def slow(handler):
        time.sleep(1.5)

    fake.reply = slow
    client = PrometheusClient(fake.url, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(SourceTimeout, match=r"did not answer within 0\.3 s"):
        client.query("up")
    assert time.monotonic() - started < 1.2


def test_a_body_that_stalls_is_a_timeout(fake):
    fake.reply = fake.raw(200, b'{"status": "succ', length=500, then_sleep=1.5)
    client = PrometheusClient(fake.url, timeout=0.3)
    with pytest.raises(SourceTimeout):
        client.query("up")


def test_a_connection_closed_mid_body_is_source_unavailable(fake, client):
    fake.reply = fake.raw(200, b'{"status": "succ', length=500)
    with pytest.raises(SourceUnavailable):
        client.query("up")
