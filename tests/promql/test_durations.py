from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.promql.durations import LONGEST, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0s", timedelta(0)),
        ("0", timedelta(0)),
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("1y", timedelta(days=365)),
        ("250ms", timedelta(milliseconds=250)),
        ("1m5ms", timedelta(minutes=1, milliseconds=5)),
        ("90m", timedelta(minutes=90)),
        (
            "1y2w3d4h5m6s7ms",
            timedelta(days=365 + 14 + 3, hours=4, minutes=5, seconds=6, milliseconds=7),
        ),
    ],
)
def test_parses_prometheus_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("-5m", "negative"),
        ("5x", "not valid"),
        ("abc", "not valid"),
        ("5", "not valid"),
        ("m", "not valid"),
        ("30m1h", "not valid"),
        ("1h1h", "not valid"),
        ("1.5h", "not valid"),
        (" 5m", "not valid"),
        ("99999999999999y", "too long"),
    ],
)
def test_rejects_with_a_clear_message(text, message):
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


def test_rejects_what_is_not_text():
    with pytest.raises(ValueError, match="must be text"):
        parse_duration(300)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(0), "0s"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(days=7), "1w"),
        (timedelta(days=366), "1y1d"),
        (timedelta(milliseconds=1500), "1s500ms"),
        (timedelta(microseconds=999), "0s"),
    ],
)
def test_formats_like_prometheus(value, expected):
    assert format_duration(value) == expected


def test_refuses_to_format_a_negative_duration():
    with pytest.raises(ValueError, match="negative"):
        format_duration(timedelta(seconds=-1))


whole_milliseconds = st.integers(min_value=0, max_value=LONGEST // timedelta(milliseconds=1)).map(
    lambda ms: timedelta(milliseconds=ms)
)


@given(whole_milliseconds)
def test_format_then_parse_round_trips(value):
    assert parse_duration(format_duration(value)) == value


@given(whole_milliseconds)
def test_formatting_is_canonical(value):
    text = format_duration(value)
    assert format_duration(parse_duration(text)) == text
