"""The checks models and the API share."""

import pytest
from django.core.exceptions import ValidationError

from controlplane.catalog.validators import contains_nul, validate_http_url


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("plain", False),
        ("a\x00b", True),
        ({"key": "value"}, False),
        ({"key": ["x", {"deep": "\x00"}]}, True),
        ({"ke\x00y": "value"}, True),
        (["a", ("b", "c\x00")], True),
        (1.5, False),
        (None, False),
    ],
)
def test_contains_nul_looks_everywhere(value, found):
    assert contains_nul(value) is found


def test_contains_nul_copes_with_nesting_deeper_than_python_recurses():
    value: list = ["\x00"]
    for _ in range(100_000):
        value = [value]

    assert contains_nul(value) is True


@pytest.mark.parametrize(
    "url", ["http://prometheus:9090", "https://thanos.example/prefix", "http://[::1]:9090"]
)
def test_http_urls_pass(url):
    validate_http_url(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://[::1", "not a valid URL"),
        ("http://::1]/", "not a valid URL"),
        ("http://[not-an-address]/", "not a valid URL"),
        ("ftp://prometheus", "http:// or https://"),
        ("http://", "no host name"),
        ("http://prometheus:99999", "port"),
        ("http://prome theus", "spaces"),
        ("http://prometheus\x00:9090", "NUL"),
    ],
)
def test_bad_urls_are_a_validation_error_never_a_crash(url, message):
    with pytest.raises(ValidationError, match=message):
        validate_http_url(url)
