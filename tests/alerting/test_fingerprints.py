import re

from hypothesis import given
from hypothesis import strategies as st

from controlplane.alerting.fingerprints import fingerprint

label_sets = st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=6)


def test_is_sixteen_hex_digits_and_stable_across_runs():
    # Pinned: a changed encoding would silently re-key every stored alert.
    assert fingerprint("api.5xx", {"instance": "a:9090", "job": "api"}) == "64352485806dc442"
    assert re.fullmatch(r"[0-9a-f]{16}", fingerprint("r", {}))


@given(label_sets, st.randoms())
def test_does_not_depend_on_label_order(labels, random):
    pairs = list(labels.items())
    random.shuffle(pairs)
    assert fingerprint("rule", dict(pairs)) == fingerprint("rule", labels)


@given(st.text(max_size=8), label_sets, st.text(max_size=8), label_sets)
def test_different_rule_or_labels_give_different_fingerprints(key_a, labels_a, key_b, labels_b):
    if (key_a, labels_a) != (key_b, labels_b):
        assert fingerprint(key_a, labels_a) != fingerprint(key_b, labels_b)


def test_separators_inside_values_do_not_collide():
    assert fingerprint("r", {"a": "b,c"}) != fingerprint("r", {"a": "b", "c": ""})
    assert fingerprint("r", {"a": "b=c"}) != fingerprint("r", {"a=b": "c"})
    assert fingerprint("r,a", {}) != fingerprint("r", {"a": ""})


def test_the_rule_is_part_of_the_identity():
    assert fingerprint("api.5xx", {"job": "api"}) != fingerprint("api.latency", {"job": "api"})
