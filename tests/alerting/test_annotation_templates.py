import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.alerting.templates import (
    TemplateError,
    check,
    humanize,
    humanize_duration,
    humanize_percentage,
    render,
)

LABELS = {"instance": "api-1:8000", "job": "api"}


def test_renders_labels_and_value():
    text = render("{{ $labels.instance }} is at {{ $value | humanizePercentage }}", LABELS, 0.0234)
    assert text == "api-1:8000 is at 2.34%"


def test_spaces_inside_actions_are_optional():
    assert render("{{$labels.job}}/{{$value|humanize}}", LABELS, 1500) == "api/1.5k"


def test_a_missing_label_renders_empty_like_prometheus():
    assert render("[{{ $labels.missing }}]", LABELS, 1) == "[]"


def test_text_without_actions_is_left_alone():
    text = "p95 over 5m > 0.2 s } { }} ok"
    assert render(text, LABELS, 1) == text


def test_label_values_are_not_templates_themselves():
    assert render("{{ $labels.job }}", {"job": "{{ $value }}"}, 7) == "{{ $value }}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.0, "0"),
        (1.0, "1"),
        (0.25, "0.25"),
        (123456.0, "123456"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (1.5e-05, "1.5e-05"),
        (-2.5, "-2.5"),
        (0.1 + 0.2, "0.30000000000000004"),
        (float("nan"), "NaN"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
    ],
)
def test_value_prints_as_go_prints_a_float(value, expected):
    assert render("{{ $value }}", {}, value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0"),
        (1234, "1.234k"),
        (1234567, "1.235M"),
        (999, "999"),
        (0.5, "500m"),
        (0.0012, "1.2m"),
        (-2500, "-2.5k"),
        (float("nan"), "NaN"),
        (float("inf"), "+Inf"),
    ],
)
def test_humanize(value, expected):
    assert humanize(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.0234, "2.34%"), (1, "100%"), (0.123456, "12.35%"), (0, "0%")],
)
def test_humanize_percentage(value, expected):
    assert humanize_percentage(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0s"),
        (0.25, "250ms"),
        (1.5, "1.5s"),
        (65, "1m 5s"),
        (3725, "1h 2m 5s"),
        (90061, "1d 1h 1m 1s"),
        (-65, "-1m 5s"),
        (0.000002, "2us"),
        (float("nan"), "NaN"),
    ],
)
def test_humanize_duration(value, expected):
    assert humanize_duration(value) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("a {{ $value ", r"unclosed \{\{ at line 1, column 3"),
        ("{{ $value | foo }}", "unknown function 'foo' at line 1, column 1"),
        ("x\n  {{ $foo }}", r"unknown variable '\$foo' at line 2, column 3"),
        ("{{ }}", "empty"),
        ("{{ $labels }}", "needs a label name"),
        ("{{ $value.x }}", "has no field 'x'"),
        ("{{ $labels.job | humanize }}", r"applies to \$value only"),
        ("{{ $value | humanize | humanize }}", "cannot read"),
        ("{{ if $value }}x{{ end }}", "cannot read"),
        ('{{ printf "%s" $value }}', "cannot read"),
        ("{{ .Labels.job }}", "cannot read"),
    ],
)
def test_check_names_the_problem_and_where(template, message):
    with pytest.raises(TemplateError, match=message):
        check(template)
    with pytest.raises(TemplateError, match=message):
        render(template, LABELS, 1.0)


@pytest.mark.parametrize(
    "template",
    [
        "",
        "plain",
        "{{ $value }}",
        "{{ $labels.a_b1 }} {{ $value | humanizeDuration }}",
        "{{$value|humanizePercentage}}",
    ],
)
def test_check_accepts_good_templates(template):
    check(template)


@given(st.text(alphabet=st.characters(blacklist_characters="{"), max_size=40))
def test_text_without_braces_renders_as_itself(text):
    assert render(text, LABELS, 1.0) == text
