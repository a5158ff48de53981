"""The PromQL an SLO evaluation sends, as strings, and the reading of its answer.

What the queries compute is held against a real Prometheus in
tests/integration/test_slo_queries.py; here: the exact text for each kind of SLI,
that every variant parses (promtool), and `read_measurement`, `covers`, `bucket_for`.
"""

from __future__ import annotations

import dataclasses
import math
import re
import subprocess
from datetime import timedelta

import pytest
import yaml

from controlplane.promql.client import Labels, Sample
from controlplane.slo import queries
from controlplane.slo.definition import (
    BURN_WINDOWS,
    Definition,
    Latency,
    Ratio,
    Threshold,
    Window,
)
from tests.integration.prometheus import require_prometheus

THIRTY_DAYS = timedelta(days=30)

GOOD = Ratio(
    total='http_requests_total{job="api"}', good='http_requests_total{job="api",code="200"}'
)
BAD = Ratio(total="http_requests_total", bad='http_requests_total{code=~"5.."}')
LATENCY = Latency("http_request_duration_seconds", 0.25, "0.25", 'route="/x"')
BACKUP = Threshold("time() - backup_last_success_timestamp_seconds", "<", 86400.0)


def definition(indicator, **fields) -> Definition:
    fields.setdefault("window", Window.named("30d"))
    return Definition(slug="api", name="API", indicator=indicator, objective=99.9, **fields)


def sample(value: float, **labels: str) -> Sample:
    return Sample(Labels(labels), value, 0.0)


@pytest.mark.parametrize(
    ("indicator", "window", "good", "total"),
    [
        (
            GOOD,
            "5m",
            '(sum(increase(http_requests_total{job="api",code="200"}[5m])) or vector(0)) '
            'and on() sum(increase(http_requests_total{job="api"}[5m]))',
            'sum(increase(http_requests_total{job="api"}[5m]))',
        ),
        (
            BAD,
            "1h",
            "sum(increase(http_requests_total[1h])) - "
            '(sum(increase(http_requests_total{code=~"5.."}[1h])) or vector(0))',
            "sum(increase(http_requests_total[1h]))",
        ),
        (
            LATENCY,
            "3d",
            'sum(increase(http_request_duration_seconds_bucket{route="/x",le="0.25"}[3d]))',
            'sum(increase(http_request_duration_seconds_count{route="/x"}[3d]))',
        ),
        (
            Latency("rpc_seconds", 1.0, "1", "  "),
            "5m",
            'sum(increase(rpc_seconds_bucket{le="1"}[5m]))',
            "sum(increase(rpc_seconds_count[5m]))",
        ),
        (
            Latency("rpc_seconds", 1.0, "1", 'a="b", '),
            "5m",
            'sum(increase(rpc_seconds_bucket{a="b",le="1"}[5m]))',
            'sum(increase(rpc_seconds_count{a="b"}[5m]))',
        ),
    ],
    ids=["good counter", "bad counter", "latency", "latency without filter", "trailing comma"],
)
def test_event_counts(indicator, window, good, total):
    assert queries.good_events(indicator, window) == good
    assert queries.total_events(indicator, window) == total


@pytest.mark.parametrize(
    ("indicator", "expected"),
    [
        (
            GOOD,
            '(sum(increase(http_requests_total{job="api"}[1h])) - '
            '(sum(increase(http_requests_total{job="api",code="200"}[1h])) or vector(0))) '
            '/ sum(increase(http_requests_total{job="api"}[1h]))',
        ),
        (
            BAD,
            '(sum(increase(http_requests_total{code=~"5.."}[1h])) or vector(0)) '
            "/ sum(increase(http_requests_total[1h]))",
        ),
        (
            LATENCY,
            '(sum(increase(http_request_duration_seconds_count{route="/x"}[1h])) - '
            'sum(increase(http_request_duration_seconds_bucket{route="/x",le="0.25"}[1h]))) '
            '/ sum(increase(http_request_duration_seconds_count{route="/x"}[1h]))',
        ),
    ],
    ids=["good counter", "bad counter", "latency"],
)
def test_error_ratio(indicator, expected):
    assert queries.error_ratio(indicator, "1h") == expected


@pytest.mark.parametrize(
    ("definition_", "expected"),
    [
        (
            definition(BACKUP, budgeting="timeslices"),
            "min((\ntime() - backup_last_success_timestamp_seconds\n) < bool 86400.0)",
        ),
        (
            definition(Threshold("  up{job='x'}  ", "==", -1), budgeting="timeslices"),
            "min((\nup{job='x'}\n) == bool (-1.0))",
        ),
        (
            definition(BAD, budgeting="timeslices", slice_target=0.95),
            "1 - ((sum(increase(http_requests_total[5m])) - "
            '(sum(increase(http_requests_total{code=~"5.."}[5m])) or vector(0))) '
            "/ sum(increase(http_requests_total[5m])) < bool 0.95)",
        ),
        (
            definition(
                LATENCY,
                budgeting="timeslices",
                slice_target=0.9,
                slice_length=timedelta(minutes=1),
            ),
            '1 - ((sum(increase(http_request_duration_seconds_bucket{route="/x",le="0.25"}[1m]))) '
            '/ sum(increase(http_request_duration_seconds_count{route="/x"}[1m])) < bool 0.9)',
        ),
    ],
    ids=["threshold", "negative threshold", "ratio", "latency"],
)
def test_slice_good(definition_, expected):
    assert queries.slice_good(definition_) == expected


def parts(query: str) -> list[tuple[str, str, str]]:
    """(window, part, inner expression) of each label_replace'd part of a measurement."""
    found = []
    for piece in query.split("\nor\n"):
        match = re.fullmatch(
            r'label_replace\(label_replace\((.*), "slo_window", "([^"]+)", "", ""\), '
            r'"slo_part", "(good|total)", "", ""\)',
            piece,
            re.DOTALL,
        )
        assert match is not None, piece
        found.append((match.group(2), match.group(3), match.group(1)))
    return found


def test_measurement_has_both_parts_of_every_window():
    found = parts(queries.measurement_query(definition(BAD), THIRTY_DAYS))
    assert [(w, p) for w, p, _ in found] == [
        (window, part) for window in ("long", *BURN_WINDOWS) for part in ("good", "total")
    ]
    inner = {(w, p): e for w, p, e in found}
    assert inner[("long", "total")] == "sum(increase(http_requests_total[4w2d]))"
    assert inner[("2h", "good")] == queries.good_events(BAD, "2h")
    assert inner[("3d", "total")] == queries.total_events(BAD, "3d")


def test_calendar_period_to_date_is_written_in_prometheus_units():
    inner = {
        (w, p): e
        for w, p, e in parts(
            queries.measurement_query(definition(GOOD), timedelta(seconds=1234567))
        )
    }
    assert inner[("long", "total")] == 'sum(increase(http_requests_total{job="api"}[2w6h56m7s]))'


def test_fast_path_reads_the_recordings_for_the_long_window_only():
    inner = {
        (w, p): e
        for w, p, e in parts(
            queries.measurement_query(
                definition(BAD), THIRTY_DAYS, fast_path=True, organization='ac"me'
            )
        )
    }
    revision = definition(BAD).revision
    assert inner[("long", "good")] == (
        'sum(sum_over_time(slo:good_events:increase5m{slo="api",organization="ac\\"me",'
        f'slo_revision="{revision}"}}[4w1d23h59m59s999ms]))'
    )
    assert inner[("long", "total")] == (
        'sum(sum_over_time(slo:total_events:increase5m{slo="api",organization="ac\\"me",'
        f'slo_revision="{revision}"}}[4w1d23h59m59s999ms]))'
    )
    assert inner[("1h", "total")] == queries.total_events(BAD, "1h")


def test_fast_path_organization_defaults_to_the_definitions():
    query = queries.measurement_query(
        definition(BAD, organization="acme"), THIRTY_DAYS, fast_path=True
    )
    assert 'slo:total_events:increase5m{slo="api",organization="acme",slo_revision=' in query


def test_time_slices_count_slices_over_each_window():
    slo = definition(BACKUP, budgeting="timeslices", slice_length=timedelta(minutes=10))
    inner = {
        (w, p): e for w, p, e in parts(queries.measurement_query(slo, THIRTY_DAYS, fast_path=True))
    }
    good = queries.slice_good(slo)
    assert inner[("long", "good")] == f"sum_over_time(({good})[4w1d23h59m59s999ms:10m])"
    assert inner[("long", "total")] == f"count_over_time(({good})[4w1d23h59m59s999ms:10m])"
    assert inner[("1h", "total")] == f"count_over_time(({good})[59m59s999ms:10m])"


@pytest.mark.parametrize(
    ("slo", "long_window", "message"),
    [
        (definition(BACKUP), THIRTY_DAYS, "time slices only"),
        (definition(BAD, budgeting="timeslices"), THIRTY_DAYS, "slice target"),
        (definition(BAD, budgeting="timeslices", slice_target=1.5), THIRTY_DAYS, "slice target"),
        (definition(BAD), timedelta(0), "positive whole number of seconds"),
        (definition(BAD), timedelta(days=1, milliseconds=500), "whole number of seconds"),
        (definition(Ratio(total="t_total")), THIRTY_DAYS, "good or a bad"),
        (definition(Ratio(total="t_total", good="g", bad="b")), THIRTY_DAYS, "good or a bad"),
        (definition(Ratio(total=" ", bad="b_total")), THIRTY_DAYS, "total counter selector"),
        (
            definition(Threshold("x", ">", math.nan), budgeting="timeslices"),
            THIRTY_DAYS,
            "finite",
        ),
    ],
)
def test_refused(slo, long_window, message):
    with pytest.raises(ValueError, match=message):
        queries.measurement_query(slo, long_window)


def test_every_variant_parses(tmp_path):
    """promtool parses each query as a rule expression: the strings are PromQL."""
    _, promtool = require_prometheus()
    variants = [
        definition(GOOD),
        definition(BAD),
        definition(LATENCY),
        definition(Latency("m", 1.0, "1")),
        definition(BACKUP, budgeting="timeslices"),
        definition(BAD, budgeting="timeslices", slice_target=0.99),
        definition(LATENCY, budgeting="timeslices", slice_target=0.5),
    ]
    exprs = [queries.latency_buckets_query("m", 'a="b"'), queries.latency_buckets_query("m", "")]
    for slo in variants:
        for fast in (False, True):
            exprs.append(queries.measurement_query(slo, THIRTY_DAYS, fast_path=fast))
        exprs.append(queries.coverage_query(slo, timedelta(seconds=1234567), "acme"))
        if slo.budgeting == "occurrences":
            exprs.append(queries.error_ratio(slo.indicator, "30m"))
    rules = [{"record": f"check_{n}", "expr": expr} for n, expr in enumerate(exprs)]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_coverage_query():
    assert queries.coverage_query(definition(BAD), THIRTY_DAYS, "acme") == (
        'sum(count_over_time(slo:total_events:increase5m{slo="api",organization="acme",'
        f'slo_revision="{definition(BAD).revision}"}}[4w1d23h59m59s999ms]))'
    )


def test_the_revision_follows_what_is_counted_not_the_name():
    base = definition(BAD)
    assert dataclasses.replace(base, name="Renamed", objective=99.5).revision == base.revision
    assert definition(GOOD).revision != base.revision
    assert definition(BAD, budgeting="timeslices", slice_target=0.9).revision != base.revision


@pytest.mark.parametrize(
    ("counts", "long_window", "expected"),
    [
        ([8640.0], THIRTY_DAYS, True),
        ([8638.0], THIRTY_DAYS, True),
        ([8637.0], THIRTY_DAYS, False),
        ([4000.0, 4638.0], THIRTY_DAYS, True),  # labels changed mid-window: two series
        ([], THIRTY_DAYS, False),
        ([math.nan], THIRTY_DAYS, False),
        ([4113.0], timedelta(seconds=1234567), True),  # 4115 whole 5-minute steps
        ([4112.0], timedelta(seconds=1234567), False),
        ([1.0], timedelta(minutes=7), True),
        ([0.0], timedelta(minutes=7), False),
    ],
)
def test_covers(counts, long_window, expected):
    assert queries.covers([sample(c) for c in counts], long_window) is expected


def test_read_measurement():
    samples = [
        sample(990.0, slo_window="long", slo_part="good"),
        sample(1000.0, slo_window="long", slo_part="total"),
        sample(5.0, slo_window="5m", slo_part="total"),
        sample(4.0, slo_window="5m", slo_part="good"),
        sample(3.0, slo_window="1h", slo_part="total"),  # no good: not measured
        sample(math.nan, slo_window="3d", slo_part="good"),
        sample(math.nan, slo_window="3d", slo_part="total"),
    ]
    measured = queries.read_measurement(samples)
    assert set(measured) == {"long", "5m", "3d"}
    assert measured["long"] == (990.0, 1000.0)
    assert measured["5m"] == (4.0, 5.0)
    assert all(math.isnan(v) for v in measured["3d"])
    assert queries.read_measurement([]) == {}


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({}, "no slo_window and slo_part"),
        ({"slo_window": "long"}, "no slo_window and slo_part"),
        ({"slo_part": "good"}, "no slo_window and slo_part"),
        ({"slo_window": "2d", "slo_part": "good"}, "unknown window"),
        ({"slo_window": "long", "slo_part": "bad"}, "unknown window"),
    ],
)
def test_read_measurement_refuses_foreign_samples(labels, message):
    with pytest.raises(ValueError, match=message):
        queries.read_measurement([sample(1.0, **labels)])


def test_read_measurement_refuses_twice_the_same_part():
    twice = [sample(1.0, slo_window="1h", slo_part="good")] * 2
    with pytest.raises(ValueError, match="two samples"):
        queries.read_measurement(twice)


def test_latency_buckets_query():
    assert queries.latency_buckets_query("http_seconds", 'route="/x"') == (
        'count by (le) (http_seconds_bucket{route="/x"})'
    )
    assert (
        queries.latency_buckets_query("http_seconds", "") == "count by (le) (http_seconds_bucket)"
    )


@pytest.mark.parametrize(
    ("threshold", "les", "expected"),
    [
        (0.25, ["0.1", "0.25", "+Inf"], "0.25"),
        (1.0, ["0.5", "1", "+Inf"], "1"),  # Go clients spell whole bounds without ".0"
        (1.0, ["1.0", "2.5"], "1.0"),
        (1.0, ["1.0", "1"], "1"),  # two spellings: the lexically first, stably
        (0.3, ["0.25", "0.5"], None),
        (0.1, ["0.1000000000000000055511151231257827"], "0.1000000000000000055511151231257827"),
        (2.5, ["2.5e0", "garbage"], "2.5e0"),
        (math.inf, ["+Inf"], None),
        (math.nan, ["NaN"], None),
        (0.25, [], None),
    ],
)
def test_bucket_for(threshold, les, expected):
    assert queries.bucket_for(threshold, les) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(86400, "86400.0"), (0.95, "0.95"), (1e-05, "1e-05"), (-3, "(-3.0)")],
)
def test_number(value, expected):
    assert queries.number(value) == expected
