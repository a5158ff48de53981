"""OpenSLO v1 in and out (controlplane/slo/openslo.py): pure, no database."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.slo import openslo

RATIO_SLO: dict[str, Any] = {
    "apiVersion": "openslo/v1",
    "kind": "SLO",
    "metadata": {"name": "api-availability"},
    "spec": {
        "service": "api",
        "indicator": {
            "metadata": {"name": "api-good-ratio"},
            "spec": {
                "ratioMetric": {
                    "counter": True,
                    "good": {
                        "metricSource": {
                            "type": "Prometheus",
                            "spec": {"query": 'sum(rate(http_requests_total{code!~"5.."}[5m]))'},
                        }
                    },
                    "total": {
                        "metricSource": {
                            "type": "Prometheus",
                            "spec": {"query": "sum(rate(http_requests_total[5m]))"},
                        }
                    },
                }
            },
        },
        "timeWindow": [{"duration": "28d", "isRolling": True}],
        "budgetingMethod": "Occurrences",
        "objectives": [{"target": 0.999}],
    },
}

THRESHOLD_SLI: dict[str, Any] = {
    "apiVersion": "openslo/v1",
    "kind": "SLI",
    "metadata": {"name": "backup-age"},
    "spec": {
        "thresholdMetric": {
            "metricSource": {
                "metricSourceRef": "prom",
                "type": "Prometheus",
                "spec": {"query": "time() - backup_last_success_timestamp_seconds"},
            }
        }
    },
}

THRESHOLD_SLO: dict[str, Any] = {
    "apiVersion": "openslo/v1",
    "kind": "SLO",
    "metadata": {"name": "backup-rpo", "displayName": "Backups younger than 24 h"},
    "spec": {
        "description": "RPO 24 h",
        "service": "backups",
        "indicatorRef": "backup-age",
        "timeWindow": [
            {
                "duration": "1M",
                "isRolling": False,
                "calendar": {"startTime": "2024-01-01 00:00:00", "timeZone": "Europe/Paris"},
            }
        ],
        "budgetingMethod": "Timeslices",
        "objectives": [{"op": "lt", "value": 86400, "targetPercent": 99, "timeSliceWindow": "10m"}],
    },
}


def dump(*documents: dict) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False)


def changed(document: dict, path: str, value: Any = None, *, delete: bool = False) -> dict:
    """A deep copy of `document` with the dotted `path` set to `value` (or deleted)."""
    result = copy.deepcopy(document)
    *parents, last = path.split(".")
    node: Any = result
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if delete:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return result


RATIO_QUERY = "spec.indicator.spec.ratioMetric"


# Reading


def test_the_protocol_example_reads_as_a_ratio_slo_of_counter_selectors():
    reading = openslo.read(dump(RATIO_SLO), "slos.yaml")

    assert reading.documents == [
        {
            "slug": "api-availability",
            "name": "api-availability",
            "description": "",
            "service": "api",
            "sli": {
                "kind": "ratio",
                "good": 'http_requests_total{code!~"5.."}',
                "total": "http_requests_total",
            },
            "objective": 99.9,
            "window": "28d",
            "time_zone": "UTC",
            "budgeting": "occurrences",
            "slice_length": "5m",
            "slice_target": None,
            "labels": {},
        }
    ]
    # The conversion of each query is said, not done silently.
    assert reading.notes == (
        "slos.yaml, document 1 (SLO api-availability): the queries are read as counter "
        'selectors: good sum(rate(http_requests_total{code!~"5.."}[5m])) as '
        'http_requests_total{code!~"5.."}; total sum(rate(http_requests_total[5m])) as '
        "http_requests_total",
    )


def test_a_threshold_slo_referencing_an_sli_of_another_file():
    reading = openslo.read_all(
        [("slis.yaml", dump(THRESHOLD_SLI)), ("slos.yaml", dump(THRESHOLD_SLO))]
    )

    (converted,) = reading.slos
    assert converted.document == {
        "slug": "backup-rpo",
        "name": "Backups younger than 24 h",
        "description": "RPO 24 h",
        "service": "backups",
        "source": "prom",
        "sli": {
            "kind": "threshold",
            "expr": "time() - backup_last_success_timestamp_seconds",
            "op": "<",
            "threshold": 86400.0,
        },
        "objective": 99.0,
        "window": "month",
        "time_zone": "Europe/Paris",
        "budgeting": "timeslices",
        "slice_length": "10m",
        "slice_target": None,
        "labels": {},
    }
    assert reading.notes == ()
    # The query's place is in the SLI's own file, for errors found later (by the source).
    assert str(converted.where("sli.expr")) == (
        "slis.yaml, document 1 (SLI backup-age), spec.thresholdMetric.metricSource.spec.query"
    )
    assert str(converted.where("source")).endswith("thresholdMetric.metricSource.metricSourceRef")
    assert str(converted.where("objective")) == (
        "slos.yaml, document 1 (SLO backup-rpo), spec.objectives[0].targetPercent"
    )


@pytest.mark.parametrize(
    ("op", "expected"), [("lt", "<"), ("lte", "<="), ("gt", ">"), ("gte", ">=")]
)
def test_threshold_operators_map_to_ours(op, expected):
    slo = changed(THRESHOLD_SLO, "spec.objectives.0.op", op)

    (document,) = openslo.read_all([("a", dump(THRESHOLD_SLI, slo))]).documents

    assert document["sli"]["op"] == expected


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ({"duration": "7d", "isRolling": True}, ("7d", "UTC")),
        ({"duration": "1w", "isRolling": True}, ("7d", "UTC")),
        ({"duration": "28d", "isRolling": True}, ("28d", "UTC")),
        ({"duration": "4w", "isRolling": True}, ("28d", "UTC")),
        ({"duration": "30d"}, ("30d", "UTC")),  # rolling when there is no calendar
        ({"duration": "1w", "calendar": {"timeZone": "Asia/Tokyo"}}, ("week", "Asia/Tokyo")),
        (
            {"duration": "1M", "isRolling": False, "calendar": {"timeZone": "America/New_York"}},
            ("month", "America/New_York"),
        ),
        ({"duration": "1Q", "calendar": {"timeZone": "UTC"}}, ("quarter", "UTC")),
    ],
)
def test_time_windows(window, expected):
    slo = changed(RATIO_SLO, "spec.timeWindow", [window])

    (document,) = openslo.read(dump(slo), "a").documents

    assert (document["window"], document["time_zone"]) == expected


@pytest.mark.parametrize(
    ("objective", "percent"),
    [
        ({"target": 0.999}, 99.9),
        ({"target": 0.9995}, 99.95),
        ({"target": 0.95}, 95.0),
        ({"target": 0.07}, 7.0),  # 0.07 * 100 is 7.000000000000001 in floats
        ({"targetPercent": 99.99}, 99.99),
        ({"targetPercent": 5}, 5.0),
    ],
)
def test_targets_are_read_exactly_as_written(objective, percent):
    slo = changed(RATIO_SLO, "spec.objectives", [objective])

    (document,) = openslo.read(dump(slo), "a").documents

    assert document["objective"] == percent


def test_time_slices_of_a_ratio():
    slo = changed(RATIO_SLO, "spec.budgetingMethod", "Timeslices")
    slo = changed(
        slo, "spec.objectives", [{"target": 0.99, "timeSliceTarget": 0.95, "timeSliceWindow": 1}]
    )

    (document,) = openslo.read(dump(slo), "a").documents

    assert document["budgeting"] == "timeslices"
    assert (document["slice_length"], document["slice_target"]) == ("1m", 0.95)


def test_labels_annotations_and_bad_ratios():
    slo = changed(
        RATIO_SLO,
        "metadata",
        {
            "name": "api-availability",
            "labels": {"team": "payments", "tier": "1"},
            "annotations": {
                "controlplane/min-events": "100",
                "controlplane/page": "false",
                "controlplane/ticket": "true",
                "controlplane/escalation-policy": "sre",
                "controlplane/runbook": "",
                "controlplane/enabled": "true",
                "controlplane/time-zone": "Europe/Paris",
            },
        },
    )
    bad = {"metricSource": {"spec": {"query": 'http_requests_total{code=~"5.."}'}}}
    slo = changed(slo, f"{RATIO_QUERY}.good", delete=True)
    slo = changed(slo, f"{RATIO_QUERY}.bad", bad)

    (document,) = openslo.read(dump(slo), "a").documents

    assert document["labels"] == {"team": "payments", "tier": "1"}
    assert document["sli"]["bad"] == 'http_requests_total{code=~"5.."}'
    assert "good" not in document["sli"]
    assert {key: document[key] for key in openslo.ANNOTATIONS.values()} == {
        "min_events": 100,
        "page": False,
        "ticket": True,
        "escalation_policy": "sre",
        "runbook": None,
        "enabled": True,
        "time_zone": "Europe/Paris",
    }


def test_what_is_not_read_is_noted_never_dropped():
    slo = copy.deepcopy(RATIO_SLO)
    slo["metadata"].update(
        labels={"team": "payments", "tags": ["auth", "api"]},
        annotations={"openslo.com/dashboard": "https://grafana.example/d/1"},
    )
    slo["spec"]["alertPolicies"] = ["page-on-burn"]
    slo["spec"]["objectives"] = [{"displayName": "availability", "target": 0.999, "value": 1}]
    slo["spec"]["indicator"]["metadata"]["displayName"] = "Good ratio"
    slo["spec"]["indicator"]["spec"]["description"] = "Non-5xx answers"
    slo["spec"]["indicator"]["spec"]["ratioMetric"]["total"]["metricSource"]["spec"]["step"] = 60
    slo["spec"]["timeWindow"] = [
        {"duration": "1M", "calendar": {"startTime": "2020-01-21 12:30:00", "timeZone": "UTC"}}
    ]
    service = {"apiVersion": "openslo/v1", "kind": "Service", "metadata": {"name": "api"}}
    lonely_sli = changed(THRESHOLD_SLI, "metadata.name", "unused")

    reading = openslo.read(dump(service, slo, lonely_sli), "f.yaml")

    where = "f.yaml, document 2 (SLO api-availability)"
    ignored = [note for note in reading.notes if "ignored" in note]
    assert [note.split(": ignored")[0] for note in ignored] == [
        "f.yaml, document 1 (Service api)",
        f"{where}, spec.alertPolicies",
        f"{where}, spec.indicator.metadata.displayName",
        f"{where}, spec.indicator.spec.description",
        f"{where}, spec.indicator.spec.ratioMetric.total.metricSource.spec.step",
        f"{where}, spec.objectives[0].displayName",
        f"{where}, spec.objectives[0].value",
        f"{where}, spec.timeWindow[0].calendar.startTime",
        f"{where}, metadata.labels.tags",
        f'{where}, metadata.annotations."openslo.com/dashboard"',
        "f.yaml, document 3 (SLI unused)",
    ]
    assert reading.documents[0]["labels"] == {"team": "payments"}


# Refusals: each names the file, the document and the field.


def bad(path: str, value: Any = None, *, delete: bool = False, document: dict = RATIO_SLO) -> str:
    return dump(changed(document, path, value, delete=delete))


WHERE = "f.yaml, document 1 (SLO api-availability)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("spec: [1, 2\n", "f.yaml: not YAML at line 2, column 1"),
        ("- 1\n- 2\n", "f.yaml, document 1: not a mapping"),
        (
            bad("apiVersion", "openslo/v1alpha"),
            "document 1, apiVersion: 'openslo/v1alpha': only openslo/v1",
        ),
        (bad("kind", "Dashboard"), "document 1, kind: 'Dashboard' is no OpenSLO v1 kind"),
        (bad("metadata.name", delete=True), "document 1, metadata.name: missing"),
        (bad("spec", delete=True), f"{WHERE}, spec: missing"),
        (bad("spec.indicator", delete=True), f"{WHERE}, spec.indicator: missing"),
        (bad("spec.indicator", delete=True), "indicator (inline) or indicatorRef"),
        (
            bad("spec.indicatorRef", "nope"),
            f"{WHERE}, spec.indicator: give indicator or indicatorRef, not both",
        ),
        (
            bad(f"{RATIO_QUERY}.bad", {"metricSource": {"spec": {"query": "x_total"}}}),
            f"{WHERE}, {RATIO_QUERY}: give good or bad (with total), not both and not neither",
        ),
        (bad(f"{RATIO_QUERY}.good", delete=True), f"{WHERE}, {RATIO_QUERY}: give good or bad"),
        (bad(f"{RATIO_QUERY}.total", delete=True), f"{WHERE}, {RATIO_QUERY}.total: missing"),
        (
            bad(f"{RATIO_QUERY}.counter", False),
            f"{WHERE}, {RATIO_QUERY}.counter: False: the SLO counts",
        ),
        (bad(f"{RATIO_QUERY}.raw", {}), f"{WHERE}, {RATIO_QUERY}.raw: a precomputed ratio"),
        (
            bad(f"{RATIO_QUERY}.good.metricSource.type", "Datadog"),
            f"{WHERE}, {RATIO_QUERY}.good.metricSource.type: 'Datadog': only Prometheus",
        ),
        (
            bad(f"{RATIO_QUERY}.total.metricSource.spec", {"promql": "x"}),
            f"{WHERE}, {RATIO_QUERY}.total.metricSource.spec.query: missing",
        ),
        (
            bad(
                f"{RATIO_QUERY}.total.metricSource.spec.query",
                "sum(rate(a[5m])) / sum(rate(b[5m]))",
            ),
            f"{WHERE}, {RATIO_QUERY}.total.metricSource.spec.query: 'sum(rate(a[5m])) / sum",
        ),
        (
            bad("spec.objectives.0.target", 1),
            f"{WHERE}, spec.objectives[0].target: 1.0: the target is a share strictly "
            "between 0 and 1",
        ),
        (bad("spec.objectives.0.target", 0), f"{WHERE}, spec.objectives[0].target: 0.0"),
        (bad("spec.objectives.0.target", -0.5), f"{WHERE}, spec.objectives[0].target: -0.5"),
        (
            bad("spec.objectives.0.target", "high"),
            f"{WHERE}, spec.objectives[0].target: a number, not 'high'",
        ),
        (
            bad("spec.objectives", [{"targetPercent": 100}]),
            f"{WHERE}, spec.objectives[0].targetPercent: 100.0: the target is a percentage "
            "strictly between 0 and 100",
        ),
        (
            bad("spec.objectives", [{"targetPercent": 0}]),
            f"{WHERE}, spec.objectives[0].targetPercent: 0.0",
        ),
        (
            bad("spec.objectives", [{"target": 0.9, "targetPercent": 90}]),
            f"{WHERE}, spec.objectives[0]: give target or targetPercent, not both",
        ),
        (
            bad("spec.objectives", [{"displayName": "x"}]),
            f"{WHERE}, spec.objectives[0]: give target or targetPercent",
        ),
        (
            bad("spec.objectives", [{"target": 0.9}, {"target": 0.99}]),
            f"{WHERE}, spec.objectives: 2 objectives: an SLO here has exactly one",
        ),
        (bad("spec.objectives", []), f"{WHERE}, spec.objectives: 0 objectives"),
        (bad("spec.objectives", delete=True), f"{WHERE}, spec.objectives: missing"),
        (
            bad("spec.objectives", [{"target": 0.9, "indicatorRef": "x"}]),
            "spec.objectives[0].indicatorRef: composite SLOs",
        ),
        (
            bad("spec.timeWindow", [{"duration": "14d", "isRolling": True}]),
            f"{WHERE}, spec.timeWindow[0].duration: rolling window '14d' is not supported: "
            "use 7d (or 1w), 28d (or 4w) or 30d",
        ),
        (
            bad("spec.timeWindow", [{"duration": "1Y", "calendar": {"timeZone": "UTC"}}]),
            f"{WHERE}, spec.timeWindow[0].duration: calendar window '1Y' is not supported: use 1w",
        ),
        (
            bad("spec.timeWindow", [{"duration": "1M", "isRolling": False}]),
            f"{WHERE}, spec.timeWindow[0].calendar: missing",
        ),
        (
            bad("spec.timeWindow", [{"duration": "1M", "calendar": {"startTime": "2024-01-01"}}]),
            f"{WHERE}, spec.timeWindow[0].calendar.timeZone: missing",
        ),
        (
            bad(
                "spec.timeWindow",
                [{"duration": "28d", "isRolling": True, "calendar": {"timeZone": "UTC"}}],
            ),
            f"{WHERE}, spec.timeWindow[0].calendar: a rolling window",
        ),
        (
            bad(
                "spec.timeWindow",
                [{"duration": "1M", "calendar": {"timeZone": "UTC", "startTime": "soon"}}],
            ),
            f"{WHERE}, spec.timeWindow[0].calendar.startTime: 'soon' is not a date",
        ),
        (
            bad("spec.timeWindow", [{"duration": "28d"}, {"duration": "7d"}]),
            f"{WHERE}, spec.timeWindow: a list of exactly one window, not 2 windows",
        ),
        (bad("spec.timeWindow", delete=True), f"{WHERE}, spec.timeWindow: missing"),
        (
            bad("spec.budgetingMethod", "RatioTimeslices"),
            f"{WHERE}, spec.budgetingMethod: RatioTimeslices (the average of the slices' "
            "ratios) is not supported",
        ),
        (
            bad("spec.budgetingMethod", "Budgets"),
            f"{WHERE}, spec.budgetingMethod: 'Budgets': use Occurrences or Timeslices",
        ),
        (bad("spec.budgetingMethod", delete=True), f"{WHERE}, spec.budgetingMethod: missing"),
        (
            bad("spec.budgetingMethod", "Timeslices"),
            f"{WHERE}, spec.objectives[0].timeSliceWindow: missing",
        ),
        (
            bad(
                "spec.objectives",
                [{"target": 0.9, "timeSliceWindow": "5m"}],
                document=changed(RATIO_SLO, "spec.budgetingMethod", "Timeslices"),
            ),
            f"{WHERE}, spec.objectives[0].timeSliceTarget: missing",
        ),
        (
            bad(
                "spec.objectives",
                [{"target": 0.9, "timeSliceWindow": "5m", "timeSliceTarget": 1.5}],
                document=changed(RATIO_SLO, "spec.budgetingMethod", "Timeslices"),
            ),
            f"{WHERE}, spec.objectives[0].timeSliceTarget: 1.5: a share in (0, 1]",
        ),
        (
            bad(
                "spec.objectives",
                [{"target": 0.9, "timeSliceWindow": "five", "timeSliceTarget": 0.9}],
                document=changed(RATIO_SLO, "spec.budgetingMethod", "Timeslices"),
            ),
            f"{WHERE}, spec.objectives[0].timeSliceWindow: 'five' is not a duration",
        ),
        (
            bad("metadata.annotations", {"controlplane/min-events": "many"}),
            f"{WHERE}, metadata.annotations.\"controlplane/min-events\": 'many': a whole number",
        ),
        (
            bad("metadata.annotations", {"controlplane/page": "perhaps"}),
            f"{WHERE}, metadata.annotations.\"controlplane/page\": 'perhaps'",
        ),
    ],
)
def test_refusals_name_the_file_the_document_and_the_field(text, expected):
    with pytest.raises(openslo.OpenSLOError) as refused:
        openslo.read(text, "f.yaml")
    assert expected in str(refused.value)


SLI_AT = "slis.yaml, document 1 (SLI backup-age)"
SLO_AT = "slos.yaml, document 1 (SLO backup-rpo)"


@pytest.mark.parametrize(
    ("sli", "slo", "expected"),
    [
        (
            THRESHOLD_SLI,
            changed(THRESHOLD_SLO, "spec.objectives.0.op", "eq"),
            f"{SLO_AT}, spec.objectives[0].op: 'eq': a thresholdMetric's objective compares "
            "with lt, lte, gt, gte",
        ),
        (
            THRESHOLD_SLI,
            changed(THRESHOLD_SLO, "spec.objectives.0.op", delete=True),
            f"{SLO_AT}, spec.objectives[0].op: missing",
        ),
        (
            THRESHOLD_SLI,
            changed(THRESHOLD_SLO, "spec.objectives.0.value", delete=True),
            f"{SLO_AT}, spec.objectives[0].value: missing",
        ),
        (
            THRESHOLD_SLI,
            changed(THRESHOLD_SLO, "spec.budgetingMethod", "Occurrences"),
            f"{SLO_AT}, spec.budgetingMethod: a thresholdMetric is budgeted by Timeslices only",
        ),
        (
            THRESHOLD_SLI,
            changed(THRESHOLD_SLO, "spec.indicatorRef", "backup-size"),
            f"{SLO_AT}, spec.indicatorRef: 'backup-size' names no SLI document of this "
            "import (its SLIs: backup-age)",
        ),
        (
            changed(THRESHOLD_SLI, "spec.thresholdMetric.metricSource.spec.query", ""),
            THRESHOLD_SLO,
            f"{SLI_AT}, spec.thresholdMetric.metricSource.spec.query: missing",
        ),
        (
            changed(THRESHOLD_SLI, "spec.ratioMetric", {}),
            THRESHOLD_SLO,
            f"{SLI_AT}, spec.ratioMetric: give ratioMetric or thresholdMetric, not both",
        ),
    ],
)
def test_refusals_of_threshold_slos_and_referenced_slis(sli, slo, expected):
    with pytest.raises(openslo.OpenSLOError) as refused:
        openslo.read_all([("slis.yaml", dump(sli)), ("slos.yaml", dump(slo))])
    assert expected in str(refused.value)


def test_a_half_valid_stream_is_refused_at_its_bad_document():
    second = changed(
        changed(RATIO_SLO, "metadata.name", "second"), "spec.objectives.0.target", 99.9
    )

    with pytest.raises(openslo.OpenSLOError) as refused:
        openslo.read(dump(RATIO_SLO, second), "f.yaml")

    assert str(refused.value).startswith(
        "f.yaml, document 2 (SLO second), spec.objectives[0].target: 99.9:"
    )


def test_two_slos_of_one_name_and_two_sources_of_one_slo_are_refused():
    with pytest.raises(
        openslo.OpenSLOError,
        match=r"a second SLO named 'api-availability' \(the first is a.yaml, document 1",
    ):
        openslo.read_all([("a.yaml", dump(RATIO_SLO)), ("b.yaml", dump(RATIO_SLO))])

    slo = changed(RATIO_SLO, f"{RATIO_QUERY}.good.metricSource.metricSourceRef", "eu")
    slo = changed(slo, f"{RATIO_QUERY}.total.metricSource.metricSourceRef", "us")
    with pytest.raises(openslo.OpenSLOError) as refused:
        openslo.read(dump(slo), "f.yaml")
    assert str(refused.value) == (
        f"{WHERE}, {RATIO_QUERY}.total.metricSource.metricSourceRef: names the source 'us', "
        f"but {WHERE}, {RATIO_QUERY}.good.metricSource.metricSourceRef names 'eu': an SLO "
        "reads one source"
    )


# Queries


@pytest.mark.parametrize(
    ("query", "selector"),
    [
        ("http_requests_total", "http_requests_total"),
        ('  http_requests_total{code=~"5.."}  ', 'http_requests_total{code=~"5.."}'),
        ('sum(rate(http_requests_total{code!~"5.."}[5m]))', 'http_requests_total{code!~"5.."}'),
        ("sum(increase(jobs_total[1h]))", "jobs_total"),
        ('rate(jobs_total{job="etl"}[30s])', 'jobs_total{job="etl"}'),
        ("increase(jobs_total[1d])", "jobs_total"),
        ('sum ( rate ( x_total { a = "b" } [ 5m ] ) )', 'x_total { a = "b" }'),
        ('{__name__="x_total", job="a"}', '{__name__="x_total", job="a"}'),
        ("x_total{path=\"/a)b]c}[\", q='it\\'s'}", "x_total{path=\"/a)b]c}[\", q='it\\'s'}"),
        ('x_total{a="say \\"hi\\"",}', 'x_total{a="say \\"hi\\"",}'),
        ("x_total{a=`raw\\`}", "x_total{a=`raw\\`}"),
        ("sum(rate(x_total[$__rate_interval]))", "x_total"),
        ("sum(rate(x_total{a='b'}[{{.window}}]))", "x_total{a='b'}"),
    ],
)
def test_counter_selectors_are_taken_out_of_rates(query, selector):
    assert openslo.counter_selector(query) == selector


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("sum by (code) (rate(x_total[5m]))", "grouping by labels"),
        ("sum(rate(x_total[5m])) by (code)", "grouping by labels"),
        ("sum without (pod) (rate(x_total[5m]))", "grouping by labels"),
        ("sum(rate(a_total[5m])) / sum(rate(b_total[5m]))", "unexpected '/ sum"),
        ("sum(x_total)", "sum() must hold rate() or increase()"),
        ("avg(rate(x_total[5m]))", "unexpected '(rate"),
        ("rate(x_total[5m] offset 1h)", "offset and @ are not supported"),
        ("rate(x_total[5m:1m])", "a subquery"),
        ("rate(x_total)", "take a range"),
        ('x_total{a="b', "a label value is not closed"),
        ('x_total{a="b"', "expected , or } after a label matcher"),
        ("x_total{a=b}", "expected a quoted label value"),
        ('x_total{a~"b"}', "expected =, !=, =~ or !~"),
        ("{}", "an empty selector"),
        ("", "expected a metric name"),
        ("histogram_quantile(0.9, rate(x_bucket[5m]))", "unexpected"),
        ("x_total > 5", "unexpected '> 5'"),
    ],
)
def test_other_queries_are_refused_saying_why(query, why):
    with pytest.raises(ValueError, match="exact increase") as refused:
        openslo.counter_selector(query)
    assert why in str(refused.value)


# Writing


def test_latency_is_written_as_bucket_over_count_and_says_so():
    document = {
        "slug": "api-latency",
        "name": "API latency",
        "source": "prom",
        "sli": {
            "kind": "latency",
            "metric": "http_seconds",
            "selector": 'route="/x"',
            "threshold": 0.25,
        },
        "objective": 95.0,
        "window": "month",
        "time_zone": "Europe/Paris",
    }

    text = openslo.write([document], "acme", {"api-latency": "0.25"})

    assert "# SLO api-latency: its latency SLI (http_seconds under 0.25 s) is written as" in text
    (read,) = openslo.read(text, "out.yaml").documents
    assert read["sli"] == {
        "kind": "ratio",
        "good": 'http_seconds_bucket{route="/x", le="0.25"}',
        "total": 'http_seconds_count{route="/x"}',
    }
    assert openslo.export_notes([document]) == [
        "SLO api-latency: its latency SLI (http_seconds under 0.25 s) is written as the "
        "ratio of the bucket to the count: it re-imports as a ratio SLI",
        "SLO api-latency: no service, which OpenSLO requires: spec.service is left out",
    ]


@pytest.mark.parametrize(
    ("metric", "selector", "le", "good", "total"),
    [
        ("h", "", "1", 'h_bucket{le="1"}', "h_count"),
        ("h", ' job="a", ', "0.5", 'h_bucket{job="a", le="0.5"}', 'h_count{job="a"}'),
    ],
)
def test_latency_selectors(metric, selector, le, good, total):
    assert openslo.latency_selectors(metric, selector, le) == (good, total)


def test_a_comparison_openslo_cannot_say_is_skipped_with_a_note():
    document = {
        "slug": "exact",
        "name": "Exact",
        "service": "api",
        "sli": {"kind": "threshold", "expr": "up", "op": "==", "threshold": 1},
        "objective": 99.0,
        "budgeting": "timeslices",
    }

    text = openslo.write([document], "acme")

    assert openslo.read(text, "out.yaml").documents == []
    assert "# SLO exact skipped: its comparison == has no OpenSLO operator" in text


# Round trip: read(write(documents)) gives the documents back.

NAMES = st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True)
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)
LABEL = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,10}", fullmatch=True)
METRIC = st.from_regex(r"[a-z_][a-z0-9_:]{0,15}_total", fullmatch=True)
ZONES = st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"])


@st.composite
def matcher(draw) -> str:
    value = draw(TEXT)
    quoted = draw(
        st.sampled_from(
            [
                '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"',
                "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'",
                "`" + value.replace("`", "") + "`",
            ]
        )
    )
    space = draw(st.sampled_from(["", " "]))
    op = draw(st.sampled_from(["=", "!=", "=~", "!~"]))
    return f"{draw(LABEL)}{space}{op}{space}{quoted}"


@st.composite
def selector(draw) -> str:
    matchers = draw(st.lists(matcher(), max_size=3))
    name = draw(METRIC) if not matchers or draw(st.booleans()) else ""
    if not matchers:
        return name
    comma = draw(st.sampled_from([",", ", "]))
    trailing = draw(st.sampled_from(["", ","]))
    return f"{name}{{{comma.join(matchers)}{trailing}}}"


@st.composite
def slo_document(draw) -> dict[str, Any]:
    kind = draw(st.sampled_from(["ratio", "threshold", "latency"]))
    if kind == "ratio":
        numerator = draw(st.sampled_from(["good", "bad"]))
        sli: dict[str, Any] = {
            "kind": "ratio",
            numerator: draw(selector()),
            "total": draw(selector()),
        }
    elif kind == "threshold":
        sli = {
            "kind": "threshold",
            "expr": draw(TEXT.map(str.strip).filter(bool)),
            "op": draw(st.sampled_from(["<", "<=", ">", ">="])),
            "threshold": draw(st.floats(allow_nan=False, allow_infinity=False)),
        }
    else:
        sli = {
            "kind": "latency",
            "metric": draw(st.from_regex(r"[a-z_][a-z0-9_]{0,15}_seconds", fullmatch=True)),
            "selector": ", ".join(draw(st.lists(matcher(), max_size=2))),
            "threshold": draw(st.floats(min_value=0.001, max_value=100)),
        }
    budgeting = (
        "timeslices"
        if kind == "threshold"
        else draw(st.sampled_from(["occurrences", "timeslices"]))
    )
    window = draw(st.sampled_from(["7d", "28d", "30d", "week", "month", "quarter"]))
    slices = budgeting == "timeslices"
    return {
        "slug": draw(NAMES),
        "name": draw(TEXT.filter(bool)),
        "description": draw(TEXT),
        "service": draw(st.none() | NAMES),
        "source": draw(NAMES),
        "sli": sli,
        "objective": draw(
            st.floats(min_value=0, max_value=100, exclude_min=True, exclude_max=True)
        ),
        "window": window,
        "time_zone": draw(ZONES),
        "budgeting": budgeting,
        "slice_length": draw(st.sampled_from(["1m", "5m", "10m", "15m", "1h"])) if slices else "5m",
        "slice_target": (
            draw(st.floats(min_value=0, max_value=1, exclude_min=True))
            if slices and kind != "threshold"
            else None
        ),
        "min_events": draw(st.integers(0, 10**12)),
        "page": draw(st.booleans()),
        "ticket": draw(st.booleans()),
        "escalation_policy": draw(st.none() | NAMES),
        "runbook": draw(st.none() | NAMES),
        "labels": draw(st.dictionaries(LABEL, TEXT, max_size=3)),
        "enabled": draw(st.booleans()),
    }


@settings(max_examples=300, deadline=None)
@given(
    selector(),
    st.sampled_from(["{}", "sum(rate({}[5m]))", "sum(increase({}[1h]))", "rate({}[5m])"]),
)
def test_every_selector_comes_back_out_of_its_rate(written, shape):
    assert openslo.counter_selector(shape.format(written)) == written


@settings(max_examples=200, deadline=None)
@given(st.lists(slo_document(), max_size=3, unique_by=lambda document: document["slug"]))
def test_read_of_write_gives_the_documents_back(documents):
    bucket_les = {
        d["slug"]: repr(d["sli"]["threshold"]) for d in documents if d["sli"]["kind"] == "latency"
    }

    reading = openslo.read(openslo.write(documents, "acme", bucket_les), "export.yaml")

    expected = []
    for document in documents:
        sli = document["sli"]
        if sli["kind"] == "latency":
            good, total = openslo.latency_selectors(
                sli["metric"], sli["selector"], bucket_les[document["slug"]]
            )
            document = {**document, "sli": {"kind": "ratio", "good": good, "total": total}}
        expected.append(document)
    assert reading.documents == expected
    # Nothing of ours is ignored on the way back: the only notes are the conversions of
    # the rates written back to selectors.
    assert all("the queries are read as counter selectors" in note for note in reading.notes)
