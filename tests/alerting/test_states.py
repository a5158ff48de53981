import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.alerting.fingerprints import fingerprint
from controlplane.alerting.states import (
    DuplicateLabelSet,
    InstanceState,
    alert_labels,
    breaching,
    by_fingerprint,
    dump_instances,
    load_instances,
    rule_state,
    source_down_due,
    step,
    step_unknown,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
NAN = float("nan")
INF = float("inf")


@dataclass(frozen=True)
class Point:
    labels: dict
    value: float


def breach(**values: float) -> dict:
    """Breaching series keyed by fingerprint: breach(a=1.0) is one series {"i": "a"} at 1.0."""
    return {fingerprint("r", {"i": name}): ({"i": name}, value) for name, value in values.items()}


def key(name: str) -> str:
    return fingerprint("r", {"i": name})


def run(evaluations, for_=timedelta(0), keep_firing_for=timedelta(0), interval=MINUTE):
    """Step through evaluations (None = source failed); return the states and transitions."""
    instances: dict = {}
    history = []
    for n, samples in enumerate(evaluations):
        now = T0 + n * interval
        if samples is None:
            instances, transitions = step_unknown(instances, now)
        else:
            instances, transitions = step(instances, samples, now, for_, keep_firing_for)
        history.append((instances, transitions))
    return history


def kinds(transitions) -> list[tuple[str, str]]:
    return [(t.kind, t.labels["i"]) for t in transitions]


# The state machine, case by case.


def test_without_for_the_first_true_evaluation_fires():
    [(instances, transitions)] = run([breach(a=2.0)])
    assert kinds(transitions) == [("firing", "a")]
    assert instances[key("a")].state == "firing"
    assert instances[key("a")].fired_at == T0
    assert rule_state(instances) == "firing"


def test_with_for_it_is_pending_until_for_has_passed():
    history = run([breach(a=1.0)] * 4, for_=timedelta(minutes=3))
    assert [kinds(t) for _, t in history] == [[("pending", "a")], [], [], [("firing", "a")]]
    assert [rule_state(i) for i, _ in history] == ["pending", "pending", "pending", "firing"]
    firing = history[-1][0][key("a")]
    assert firing.active_since == T0
    assert firing.fired_at == T0 + 3 * MINUTE


def test_a_pending_instance_that_goes_away_is_cleared_and_forgotten():
    history = run([breach(a=1.0), {}, breach(a=1.0), breach(a=1.0)], for_=timedelta(minutes=2))
    assert [kinds(t) for _, t in history] == [
        [("pending", "a")],
        [("cleared", "a")],
        [("pending", "a")],
        [],
    ]
    # The count restarts: active since the third evaluation, not the first.
    assert history[-1][0][key("a")].active_since == T0 + 2 * MINUTE
    assert rule_state(history[1][0]) == "inactive"


def test_a_firing_instance_resolves_when_the_condition_is_false():
    history = run([breach(a=1.0), {}])
    assert kinds(history[1][1]) == [("resolved", "a")]
    assert history[1][0] == {}
    assert history[1][1][0].value == 1.0
    assert history[1][1][0].active_since == T0


def test_keep_firing_for_counts_from_the_first_evaluation_found_false():
    # Prometheus' KeepFiringSince: false at 1m, so held until 1m + 3m.
    history = run([breach(a=1.0), {}, {}, {}, {}, {}], keep_firing_for=timedelta(minutes=3))
    assert [rule_state(i) for i, _ in history] == [
        "firing",
        "firing",
        "firing",
        "firing",
        "inactive",
        "inactive",
    ]
    assert [kinds(t) for _, t in history] == [
        [("firing", "a")],
        [],
        [],
        [],
        [("resolved", "a")],
        [],
    ]
    assert history[1][0][key("a")].keep_firing_since == T0 + MINUTE


@pytest.mark.parametrize(
    ("keep_firing_for", "firing_evaluations"),
    [
        (timedelta(0), 1),  # resolves at the first false evaluation
        (timedelta(seconds=30), 2),  # less than one interval still holds one evaluation
        (MINUTE, 2),  # one interval: one more evaluation firing
        (MINUTE + timedelta(seconds=1), 3),
        (2 * MINUTE, 3),
    ],
)
def test_keep_firing_for_of_an_interval_or_less_holds_one_more_evaluation(
    keep_firing_for, firing_evaluations
):
    history = run([breach(a=1.0), {}, {}, {}, {}], keep_firing_for=keep_firing_for)
    states = [rule_state(i) for i, _ in history]
    assert states == ["firing"] * firing_evaluations + ["inactive"] * (5 - firing_evaluations)


def test_keep_firing_for_restarts_when_the_condition_is_true_again():
    history = run(
        [breach(a=1.0), {}, breach(a=5.0), {}, {}, {}], keep_firing_for=timedelta(minutes=2)
    )
    assert [rule_state(i) for i, _ in history] == [
        "firing",
        "firing",
        "firing",
        "firing",
        "firing",
        "inactive",
    ]
    assert history[2][0][key("a")].fired_at == T0  # still the same alert
    assert history[2][0][key("a")].keep_firing_since is None  # true again: starts over
    assert history[3][0][key("a")].keep_firing_since == T0 + 3 * MINUTE


def test_the_value_of_a_firing_instance_follows_each_evaluation():
    history = run([breach(a=1.0), breach(a=2.5), breach(a=0.5)])
    assert [i[key("a")].value for i, _ in history] == [1.0, 2.5, 0.5]
    assert [kinds(t) for _, t in history] == [[("firing", "a")], [], []]


def test_each_label_set_is_its_own_instance():
    history = run([breach(a=1.0), breach(a=1.0, b=1.0), breach(b=1.0)], for_=MINUTE)
    assert [kinds(t) for _, t in history] == [
        [("pending", "a")],
        [("firing", "a"), ("pending", "b")],
        [("firing", "b"), ("resolved", "a")],
    ]


def test_an_unknown_evaluation_changes_nothing_even_past_keep_firing_for():
    history = run(
        [breach(a=1.0, b=1.0), None, None, None, {}, {}], for_=timedelta(0), keep_firing_for=MINUTE
    )
    assert [rule_state(i) for i, _ in history] == [
        "firing",
        "firing",
        "firing",
        "firing",
        "firing",  # the first evaluation found false starts keep_firing_for
        "inactive",
    ]
    assert [kinds(t) for _, t in history[1:5]] == [[], [], [], []]
    assert sorted(kinds(history[5][1])) == [("resolved", "a"), ("resolved", "b")]


def test_a_pending_instance_survives_an_unknown_evaluation_and_fires_later():
    history = run([breach(a=1.0), None, breach(a=1.0)], for_=timedelta(minutes=2))
    assert kinds(history[2][1]) == [("firing", "a")]


def test_rule_state_of_no_instances_is_inactive():
    assert rule_state({}) == "inactive"


# Storage: instances go into a JSONField and must come back equal.


def test_instances_survive_a_json_round_trip():
    [(instances, _)] = run([breach(a=1.5, b=INF, c=-INF)])
    stored = json.dumps(dump_instances(instances), allow_nan=False)
    assert load_instances(json.loads(stored)) == instances


def test_a_never_evaluated_rule_loads_as_no_instances():
    assert load_instances(None) == {}


def test_instance_labels_cannot_be_changed_behind_its_back():
    labels = {"i": "a"}
    instance = InstanceState("f", labels, "firing", T0, T0, 1.0, T0)
    labels["i"] = "changed"
    assert instance.labels["i"] == "a"
    with pytest.raises(TypeError):
        instance.labels["i"] = "x"


# Which series breach.


@pytest.mark.parametrize(
    ("op", "threshold", "expected"),
    [
        (">", 1.0, [2.0, INF]),
        (">=", 1.0, [1.0, 2.0, INF]),
        ("<", 1.0, [0.0, -INF]),
        ("<=", 1.0, [0.0, 1.0, -INF]),
        ("==", 1.0, [1.0]),
        ("!=", 1.0, [0.0, 2.0, "NaN", INF, -INF]),  # NaN != 1 holds, as in IEEE and PromQL
        (None, None, [0.0, 1.0, 2.0, "NaN", INF, -INF]),  # every series present fires
    ],
)
def test_breaching_compares_as_promql_does(op, threshold, expected):
    samples = [Point({"v": str(v)}, v) for v in (0.0, 1.0, 2.0, NAN, INF, -INF)]
    found = [s.value for s in breaching(samples, op, threshold)]
    assert ["NaN" if v != v else v for v in found] == expected


def test_breaching_refuses_an_unknown_operator_or_a_missing_threshold():
    with pytest.raises(ValueError, match="unknown operator '=>'"):
        breaching([], "=>", 1.0)
    with pytest.raises(ValueError, match="needs a threshold"):
        breaching([], ">", None)


def test_by_fingerprint_keys_without_the_metric_name_but_keeps_the_result_labels():
    keyed = by_fingerprint("r", [Point({"__name__": "up", "i": "a"}, 0.0)])
    # The identity ignores __name__; the labels are the result's ($labels in templates).
    assert keyed == {key("a"): ({"__name__": "up", "i": "a"}, 0.0)}


@pytest.mark.parametrize(
    ("result", "rule", "expected"),
    [
        ({"__name__": "up", "job": "api"}, {}, {"job": "api"}),
        ({"job": "api"}, {"team": "payments"}, {"job": "api", "team": "payments"}),
        ({"job": "api", "team": "x"}, {"team": "payments"}, {"job": "api", "team": "payments"}),
        ({"job": "api"}, {"team": ""}, {"job": "api"}),  # an empty rule label is dropped
        ({"job": "api", "team": "x"}, {"team": ""}, {"job": "api"}),  # and removes the result's
    ],
)
def test_alert_labels_are_built_as_prometheus_builds_them(result, rule, expected):
    assert alert_labels(result, rule) == expected


def test_by_fingerprint_refuses_series_that_are_one_instance():
    samples = [Point({"__name__": "x", "i": "a"}, 1.0), Point({"__name__": "y", "i": "a"}, 2.0)]
    with pytest.raises(DuplicateLabelSet, match="more than one series"):
        by_fingerprint("r", samples)


@pytest.mark.parametrize(
    "rule_labels",
    [{"i": "same"}, {"i": ""}],  # the telling label overridden, or emptied (dropped)
)
def test_by_fingerprint_refuses_series_the_rule_labels_make_alike(rule_labels):
    samples = [Point({"i": "a"}, 1.0), Point({"i": "b"}, 2.0)]
    with pytest.raises(DuplicateLabelSet, match="once the rule's labels are applied"):
        by_fingerprint("r", samples, rule_labels)
    # Without those rule labels the two series are two instances.
    assert len(by_fingerprint("r", samples, {"team": "x"})) == 2


# Source down.


@pytest.mark.parametrize(
    ("failing_for", "due"),
    [
        (None, False),
        (timedelta(0), False),
        (timedelta(minutes=4, seconds=59), False),
        (timedelta(minutes=5), True),
        (timedelta(hours=1), True),
    ],
)
def test_source_down_is_due_after_the_threshold(failing_for, due):
    now = T0 + timedelta(hours=2)
    failing_since = None if failing_for is None else now - failing_for
    assert source_down_due(failing_since, now, timedelta(minutes=5)) is due


# Invariants over random histories.

names = st.sampled_from("abc")
evaluation = st.one_of(
    st.none(),  # the source failed
    st.dictionaries(names, st.floats(allow_nan=False, min_value=-1e6, max_value=1e6), max_size=3),
)
histories = st.lists(evaluation, min_size=1, max_size=12)
durations = st.integers(min_value=0, max_value=5).map(lambda n: n * MINUTE)


def rebuild(samples):
    return None if samples is None else breach(**samples)


@given(histories, durations, durations)
def test_invariants_hold_over_any_history(history, for_, keep_firing_for):
    instances: dict = {}
    for n, raw in enumerate(history):
        now = T0 + n * MINUTE
        samples = rebuild(raw)
        before = instances
        if samples is None:
            instances, transitions = step_unknown(before, now)
            assert instances == before
            assert transitions == []
            continue
        instances, transitions = step(before, samples, now, for_, keep_firing_for)
        by_key = {t.fingerprint: t.kind for t in transitions}
        assert len(by_key) == len(transitions), "at most one transition per instance"

        # Every breaching series is an instance with the value just seen.
        for k, (_, value) in samples.items():
            assert instances[k].value == value
            assert instances[k].last_true_at == now
        # A firing instance is never resolved while its series keeps breaching.
        for k, old in before.items():
            if old.state == "firing" and k in samples:
                assert instances[k].state == "firing"
                assert k not in by_key
        # Transitions say exactly what changed.
        for k, kind in by_key.items():
            if kind == "pending":
                assert k not in before
                assert instances[k].state == "pending"
            elif kind == "firing":
                assert k not in before or before[k].state == "pending"
                assert instances[k].state == "firing"
                assert instances[k].fired_at == now
            elif kind == "resolved":
                assert before[k].state == "firing"
                assert k not in instances
                assert now - before[k].last_true_at >= keep_firing_for
            else:
                assert before[k].state == "pending"
                assert k not in instances
        for k, instance in instances.items():
            if k not in before:
                assert by_key[k] in ("pending", "firing")
            # Nothing fires before its time, nothing stays pending past it.
            if instance.state == "pending":
                assert now - instance.active_since < for_
            else:
                assert instance.fired_at - instance.active_since >= for_
            # Still breaching, or held by keep_firing_for since it was first found false.
            if k in samples:
                assert instance.keep_firing_since is None
            else:
                assert instance.keep_firing_since is not None
                assert now - instance.keep_firing_since < keep_firing_for
        assert load_instances(json.loads(json.dumps(dump_instances(instances)))) == instances


@given(st.dictionaries(names, st.floats(allow_nan=False), min_size=1, max_size=3))
def test_with_for_zero_every_new_series_fires_at_once(values):
    instances, transitions = step({}, breach(**values), T0, timedelta(0), timedelta(0))
    assert sorted(kinds(transitions)) == sorted(("firing", name) for name in values)
    assert rule_state(instances) == "firing"


@given(st.integers(min_value=1, max_value=30), st.integers(min_value=0, max_value=40))
def test_keep_firing_for_holds_exactly_that_long(keep_minutes, quiet_minutes):
    keep = keep_minutes * MINUTE
    instances, _ = step({}, breach(a=1.0), T0, timedelta(0), keep)
    instances, _ = step(instances, {}, T0 + MINUTE, timedelta(0), keep)  # first found false
    now = T0 + (1 + quiet_minutes) * MINUTE
    after, transitions = step(instances, {}, now, timedelta(0), keep)
    still_firing = quiet_minutes < keep_minutes
    assert (rule_state(after) == "firing") is still_firing
    assert kinds(transitions) == ([] if still_firing else [("resolved", "a")])
