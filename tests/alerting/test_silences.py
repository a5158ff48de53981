import pytest

from controlplane.alerting.silences import MatcherError, covers, parse_matchers, subject


@pytest.mark.parametrize(
    ("matchers", "expected"),
    [
        ([{"name": "rule", "op": "=", "value": "api.5xx"}], True),
        ([{"name": "rule", "op": "!=", "value": "api.5xx"}], False),
        ([{"name": "service", "op": "=~", "value": "check.*"}], True),
        ([{"name": "service", "op": "=~", "value": "heck"}], False),  # anchored
        ([{"name": "instance", "op": "!~", "value": "b|c"}], True),
        ([{"name": "missing", "op": "=", "value": ""}], True),  # absent label is ""
        (
            [
                {"name": "rule", "op": "=", "value": "api.5xx"},
                {"name": "instance", "op": "=", "value": "z"},
            ],
            False,
        ),  # all must match
    ],
)
def test_matchers(matchers, expected):
    alert = subject("api.5xx", "checkout", {"instance": "a"})
    assert covers(parse_matchers(matchers), alert) is expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "at least one matcher"),
        ("rule=api.5xx", "at least one matcher"),
        ([{"name": "rule", "op": "~", "value": "x"}], "operator"),
        ([{"name": "1bad", "op": "=", "value": "x"}], "not a label name"),
        ([{"name": "rule", "op": "=~", "value": "(unclosed"}], "invalid regular expression"),
        ([{"name": "rule", "op": "=", "value": 5}], "must be a string"),
        ([{"name": "rule", "op": "=", "value": "x", "extra": 1}], "name, op and value"),
    ],
)
def test_bad_matchers_are_refused_clearly(data, message):
    with pytest.raises(MatcherError, match=message):
        parse_matchers(data)


def test_a_backtracking_pattern_matches_in_linear_time():
    # Python's re takes exponential time on this; RE2, like Alertmanager's, does not.
    [matcher] = parse_matchers([{"name": "instance", "op": "=~", "value": "(a+)+$"}])
    assert not matcher.matches({"instance": "a" * 50_000 + "b"})
