"""The engine's verdicts against Prometheus' own, on the same data, minute by minute.

Each case is a rule and per-minute values. The engine evaluates the rule against a
real Prometheus holding those values (backfilled), at every minute; the firing
alerts it holds (labels and annotations) then become the `exp_alerts` of a
`promtool test rules` file for the same rule and series. promtool runs
Prometheus' own rule evaluation, so it passes only if both engines agree at every
minute. Each case also states the expected outcome outright, from Prometheus'
documented behaviour, so a test can never pass by both being wrong the same way.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from controlplane.alerting import evaluation
from controlplane.alerting.models import Alert
from tests.factories import make_rule, make_source
from tests.integration.prometheus import T0, require_prometheus, series_key

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

NAN = math.nan


@dataclass(frozen=True)
class Case:
    name: str
    metric: str
    # label set -> one value per minute, from minute 0
    series: dict[tuple[tuple[str, str], ...], list[float]]
    op: str = ""
    threshold: float | None = None
    for_: timedelta = timedelta(0)
    keep_firing_for: timedelta = timedelta(0)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    # minute -> the label sets firing then, as the engine stores them (expected)
    firing: dict[int, list[dict[str, str]]] = field(default_factory=dict)
    # minute -> the annotations of the one firing alert then (expected)
    rendered: dict[int, dict[str, str]] = field(default_factory=dict)

    @property
    def minutes(self) -> int:
        return max(len(values) for values in self.series.values())

    def prometheus_expr(self) -> str:
        return f"({self.metric}) {self.op} {self.threshold:g}" if self.op else self.metric


A = (("instance", "a"),)

CASES = [
    Case(
        # Prometheus' KeepFiringSince: held for keep_firing_for after the first
        # evaluation found false (minute 3), so still firing at 3 and 4, resolved at 5.
        name="keep_firing_for_counts_from_the_first_false_evaluation",
        metric="kff_ratio",
        series={A: [0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0]},
        op=">",
        threshold=0.1,
        keep_firing_for=timedelta(minutes=2),
        firing={2: [{"instance": "a"}], 3: [{"instance": "a"}], 4: [{"instance": "a"}], 5: []},
    ),
    Case(
        # One interval of keep_firing_for keeps one more evaluation firing.
        name="keep_firing_for_of_one_interval_holds_one_evaluation",
        metric="kff_one_ratio",
        series={A: [0.5, 0.5, 0.0, 0.0, 0.0]},
        op=">",
        threshold=0.1,
        keep_firing_for=timedelta(minutes=1),
        firing={1: [{"instance": "a"}], 2: [{"instance": "a"}], 3: []},
    ),
    Case(
        # Annotations are rendered again at every evaluation with the current value.
        name="annotations_follow_the_current_value",
        metric="latency_p95_seconds",
        series={A: [2.367, 5.0, 10.0, 0.25]},
        op=">",
        threshold=0.2,
        annotations={"summary": "p95 latency is {{ $value | humanizeDuration }}"},
        rendered={
            0: {"summary": "p95 latency is 2.367s"},
            1: {"summary": "p95 latency is 5s"},
            2: {"summary": "p95 latency is 10s"},
            3: {"summary": "p95 latency is 250ms"},
        },
    ),
    Case(
        # $labels are the query result's, __name__ included; rule labels are not in them.
        name="labels_in_templates_are_the_results",
        metric="queue_depth",
        series={(("queue", "mail"),): [9, 9]},
        op=">",
        threshold=3,
        labels={"team": "payments"},
        annotations={
            "summary": "{{ $labels.__name__ }} of {{ $labels.queue }} is {{ $value }}",
            "team": "[{{ $labels.team }}]",
        },
        firing={1: [{"queue": "mail", "team": "payments"}]},
        rendered={1: {"summary": "queue_depth of mail is 9", "team": "[]"}},
    ),
    Case(
        # A rule label with an empty value is dropped, and removes the result's label.
        name="an_empty_rule_label_is_dropped",
        metric="disk_full_ratio",
        series={(("instance", "db1"), ("team", "storage")): [0.99, 0.99]},
        op=">",
        threshold=0.9,
        labels={"team": "", "severity_hint": "page"},
        firing={1: [{"instance": "db1", "severity_hint": "page"}]},
    ),
    Case(
        # A series present in the result fires whatever its value: NaN included.
        name="a_nan_series_fires_when_the_query_is_the_condition",
        metric="zero_traffic_ratio",
        series={A: [NAN, NAN]},
        firing={0: [{"instance": "a"}], 1: [{"instance": "a"}]},
    ),
    Case(
        # IEEE comparisons: NaN != 1 holds ...
        name="nan_is_not_equal_to_anything",
        metric="nan_ne_ratio",
        series={A: [NAN, NAN, 1.0]},
        op="!=",
        threshold=1,
        firing={0: [{"instance": "a"}], 1: [{"instance": "a"}], 2: []},
    ),
    Case(
        # ... and NaN > 1 does not.
        name="nan_is_not_greater_than_anything",
        metric="nan_gt_ratio",
        series={A: [NAN, 5.0, NAN]},
        op=">",
        threshold=1,
        firing={0: [], 1: [{"instance": "a"}], 2: []},
    ),
    Case(
        # `for` counts from the first true evaluation; pending alerts are not listed.
        name="for_fires_after_exactly_that_long",
        metric="for_ratio",
        series={A: [0.0, 0.5, 0.5, 0.5, 0.5, 0.0]},
        op=">",
        threshold=0.1,
        for_=timedelta(minutes=2),
        firing={2: [], 3: [{"instance": "a"}], 4: [{"instance": "a"}], 5: []},
    ),
]


@pytest.fixture(scope="module")
def prometheus(prometheus_factory):
    data = {}
    for case in CASES:
        for labels, values in case.series.items():
            points = [(T0.timestamp() + 60 * m, value) for m, value in enumerate(values)]
            data[series_key(case.metric, dict(labels))] = points
    return prometheus_factory(data)


def minute(m: int):
    return T0 + timedelta(minutes=m)


def run_engine(case: Case, org, prometheus) -> dict[int, list[tuple[dict, dict]]]:
    """The engine's firing alerts (labels, annotations) after each minute's evaluation."""
    source = make_source(org, prometheus.url)
    rule = make_rule(
        org,
        key=case.name.replace("_", "-")[:100],
        source=source,
        expr=case.metric,
        op=case.op,
        threshold=case.threshold,
        for_duration=case.for_,
        keep_firing_for=case.keep_firing_for,
        labels=case.labels,
        annotations=case.annotations,
    )
    seen = {}
    for m in range(case.minutes):
        [outcome] = evaluation.evaluate_claimed([rule.pk], at=minute(m))
        assert outcome.result == "ok", outcome
        seen[m] = sorted(
            (
                (alert.labels, alert.annotations)
                for alert in Alert.objects.filter(rule=rule, state=Alert.State.FIRING)
            ),
            key=lambda pair: sorted(pair[0].items()),
        )
    return seen


def promtool_file(case: Case, seen: dict[int, list[tuple[dict, dict]]], directory: Path) -> Path:
    rule: dict = {"alert": "Case", "expr": case.prometheus_expr()}
    if case.for_:
        rule["for"] = f"{int(case.for_.total_seconds())}s"
    if case.keep_firing_for:
        rule["keep_firing_for"] = f"{int(case.keep_firing_for.total_seconds())}s"
    if case.labels:
        rule["labels"] = case.labels
    if case.annotations:
        rule["annotations"] = case.annotations
    (directory / "rules.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "case", "rules": [rule]}]})
    )
    input_series = [
        {
            "series": series_key(case.metric, dict(labels)),
            "values": " ".join("NaN" if math.isnan(v) else repr(float(v)) for v in values),
        }
        for labels, values in case.series.items()
    ]
    tests = [
        {
            "interval": "1m",
            "input_series": input_series,
            "alert_rule_test": [
                {
                    "eval_time": f"{m}m",
                    "alertname": "Case",
                    "exp_alerts": [
                        {"exp_labels": labels, "exp_annotations": annotations}
                        for labels, annotations in alerts
                    ],
                }
                for m, alerts in seen.items()
            ],
        }
    ]
    path = directory / "test.yml"
    path.write_text(
        yaml.safe_dump({"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests})
    )
    return path


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_engine_agrees_with_prometheus(case, org, prometheus, tmp_path):
    seen = run_engine(case, org, prometheus)

    # What Prometheus documents, stated outright.
    for m, expected in case.firing.items():
        assert [labels for labels, _ in seen[m]] == expected, f"firing at minute {m}"
    for m, expected in case.rendered.items():
        assert [annotations for _, annotations in seen[m]] == [expected], f"text at minute {m}"

    # What Prometheus' own rule evaluation says, minute by minute.
    _, promtool = require_prometheus()
    result = subprocess.run(
        [promtool, "test", "rules", str(promtool_file(case, seen, tmp_path))],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, (
        f"Prometheus disagrees with the engine on {case.name}:\n{result.stdout}\n{result.stderr}"
    )


def test_the_opening_value_and_text_stay_on_the_timeline(org, prometheus):
    case = next(c for c in CASES if c.name == "annotations_follow_the_current_value")
    run_engine(case, org, prometheus)

    alert = Alert.objects.get(rule__key=case.name.replace("_", "-")[:100])
    opened = alert.events.get(kind="opened")
    assert opened.details == {"value": 2.367, "annotations": {"summary": "p95 latency is 2.367s"}}
    assert alert.value == 0.25
    assert alert.annotations == {"summary": "p95 latency is 250ms"}
