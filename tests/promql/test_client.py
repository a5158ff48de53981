"""The client against a real HTTP server on loopback that answers whatever a test says."""

import json
import math
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controlplane.catalog.outbound import SOURCES, Outbound
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
    ("status", "error_type", "error_class", "message"),
    [
        (422, "execution", QueryFailed, r"could not run the query \(execution error\)"),
        (503, "timeout", SourceTimeout, r"gave up on the query \(timeout\)"),
        (499, "canceled", SourceUnavailable, r"failed \(canceled error\)"),
        (500, "internal", SourceUnavailable, r"failed \(internal error\)"),
        (503, "unavailable", SourceUnavailable, r"failed \(unavailable error\)"),
        (200, "internal", SourceUnavailable, r"failed \(internal error\)"),
        (400, None, SourceUnavailable, r"failed \(unknown error\)"),
        # An errorType is the other side's text too: only Prometheus' own are named.
        (500, "s3cret-type", SourceUnavailable, r"failed \(unknown error\)"),
        (500, ["internal"], SourceUnavailable, r"failed \(unknown error\)"),
    ],
)
def test_prometheus_errors_say_their_kind_never_the_sources_words(
    fake, client, status, error_type, error_class, message
):
    # A source URL aimed at another service must not relay what that service says.
    payload = {"status": "error", "error": "s3cret from the other side"}
    if error_type:
        payload["errorType"] = error_type
    fake.answer(status, payload)
    with pytest.raises(error_class, match=message) as raised:
        client.query("up")
    assert type(raised.value) is error_class
    assert "s3cret" not in str(raised.value)
    assert raised.value.message.startswith(f"Prometheus at {fake.url} ")


@pytest.mark.parametrize("status", [400, 200])
def test_a_parse_error_keeps_prometheus_words(fake, client, status):
    fake.answer(status, {"status": "error", "errorType": "bad_data", "error": "1:5: parse error"})
    with pytest.raises(BadQuery) as raised:
        client.query("up{")
    assert raised.value.message == "1:5: parse error"


def test_a_parse_error_is_cut_short(fake, client):
    fake.answer(400, {"status": "error", "errorType": "bad_data", "error": "x" * 10_000})
    with pytest.raises(BadQuery) as raised:
        client.query("up{")
    assert len(raised.value.message) == 500
    assert raised.value.message.endswith("…")


def test_warnings_are_logged_cut_short_and_few(fake, client, caplog):
    fake.answer(200, {**vector(), "warnings": ["w" * 1000] * 20})
    with caplog.at_level("WARNING", logger="controlplane.promql.client"):
        client.query("up")
    warned = [r.getMessage() for r in caplog.records if r.name == "controlplane.promql.client"]
    assert len(warned) == 5
    assert all(message.endswith("w" * 199 + "…") for message in warned)


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


@pytest.mark.parametrize(
    ("content_type", "named"),
    [
        ("text/html; charset=utf-8", "text/html"),
        ("TEXT/PLAIN", "text/plain"),
        ("application/x-s3cret", "another content type"),
        ("s3cret words", "another content type"),
        ("", "no content type"),
    ],
)
def test_only_common_content_types_are_named(fake, client, content_type, named):
    fake.reply = fake.raw(502, b"", content_type)
    with pytest.raises(SourceUnavailable) as raised:
        client.query("up")
    assert raised.value.message == f"Prometheus at {fake.url} answered HTTP 502 ({named})"


@pytest.mark.parametrize(
    "data",
    [
        {"resultType": "s3cret", "result": []},
        {"resultType": "vector", "result": [{"metric": {}, "value": [1, "s3cret"]}]},
        {"resultType": "vector", "result": [{"metric": {}, "value": ["s3cret", "1"]}]},
        {"resultType": "vector", "result": [{"metric": {}, "value": ["s3cret"]}]},
        {"resultType": "scalar", "result": "s3cret"},
    ],
)
def test_values_of_an_unexpected_answer_are_never_quoted(fake, client, data):
    fake.answer(200, {"status": "success", "data": data})
    with pytest.raises(SourceUnavailable) as raised:
        client.query("up")
    assert "s3cret" not in raised.value.message


def test_a_range_query_answer_of_an_unknown_type_is_not_quoted(fake, client):
    fake.answer(200, {"status": "success", "data": {"resultType": "s3cret", "result": []}})
    with pytest.raises(SourceUnavailable, match="resultType of an unknown kind") as raised:
        client.query_range("up", 0, 60, 15)
    assert "s3cret" not in raised.value.message


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


def test_a_source_on_a_refused_address_names_the_setting(fake, settings):
    settings.ALLOWED_SOURCE_NETWORKS = []
    url = f"http://localhost:{fake.server.server_port}"
    with pytest.raises(SourceUnavailable) as raised:
        PrometheusClient(url, timeout=2).query("up")
    assert raised.value.message == (
        f"Prometheus at {url} is not queried: localhost resolves to a loopback address; "
        "set ALLOWED_SOURCE_NETWORKS to allow it"
    )
    assert fake.requests == []


def test_a_redirect_is_a_source_error(fake, client):
    def moved(handler):
        handler.send_response(301)
        handler.send_header("Location", "http://127.0.0.1:9/s3cret")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    fake.reply = moved
    with pytest.raises(SourceUnavailable) as raised:
        client.query("up")
    assert raised.value.message == (
        f"Prometheus at {fake.url} answered with a redirect (HTTP 301); redirects are not followed"
    )


def test_an_answer_past_the_size_bound_is_a_source_error(fake):
    fake.answer(200, vector(*({"metric": {"i": str(i)}, "value": [1, "1"]} for i in range(1000))))
    client = PrometheusClient(fake.url, timeout=2, guard=Outbound(SOURCES, max_bytes=16 * 1024))
    with pytest.raises(SourceUnavailable) as raised:
        client.query("up")
    assert raised.value.message == (
        f"Prometheus at {fake.url} answered more than 16 KiB, the most that is read"
    )


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
    # Waiting out the sleep would bring an empty answer, a different error.
    with pytest.raises(SourceTimeout, match=r"did not answer within 0\.3 s"):
        client.query("up")


def test_a_body_that_stalls_is_a_timeout(fake):
    fake.reply = fake.raw(200, b'{"status": "succ', length=500, then_sleep=1.5)
    client = PrometheusClient(fake.url, timeout=0.3)
    with pytest.raises(SourceTimeout):
        client.query("up")


def test_a_connection_closed_mid_body_is_source_unavailable(fake, client):
    fake.reply = fake.raw(200, b'{"status": "succ', length=500)
    with pytest.raises(SourceUnavailable):
        client.query("up")
