"""Serializer fields the API shares."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from controlplane.alerting.models import KEY_VALIDATOR
from controlplane.promql import values

NON_FINITE = list(values.NON_FINITE)
UNIX_SECONDS = re.compile(r"^-?[0-9]{1,12}(\.[0-9]{1,9})?$")
UNIX_MILLISECONDS = re.compile(r"^-?[0-9]{1,16}$")


@extend_schema_field(
    {
        "oneOf": [{"type": "number"}, {"type": "string", "enum": NON_FINITE}],
        "nullable": True,
        "description": 'A number; NaN and infinities as Prometheus writes them: "NaN", '
        '"+Inf", "-Inf".',
    }
)
class SampleValueField(serializers.FloatField):
    """A value measured by a source, or compared with one.

    PromQL yields NaN and infinities (x/0 is +Inf), which JSON has no numbers for:
    they go out as strings in Prometheus' own spelling instead of failing the whole
    answer. Coming in, only finite numbers are accepted.
    """

    def to_representation(self, value) -> float | str:
        return values.to_json(float(value))


# What validate_http_url accepts begins like this: http(s), a host, no credentials.
HTTP_URL_PATTERN = r"^https?://[^\s/?#@]+([/?#]\S*)?$"


@extend_schema_field(
    {
        "type": "string",
        "maxLength": 500,
        "pattern": HTTP_URL_PATTERN,
        "example": "http://prometheus:9090",
    }
)
class HttpUrlField(serializers.CharField):
    """A source's base URL; the model's validator decides, the schema says its shape."""


@extend_schema_field(
    {
        "type": "string",
        "maxLength": 100,
        "pattern": KEY_VALIDATOR.regex.pattern,
        "example": "api.5xx",
    }
)
class RuleKeyField(serializers.CharField):
    """A rule's key; the model's validator decides, the schema says its shape."""


def query_time(raw: str, name: str) -> datetime:
    """A query parameter's time, ISO 8601 with its offset or unix seconds, as an aware UTC
    datetime; else a 400 naming the parameter. Every endpoint that filters by time reads
    it this way."""
    text = raw.strip()
    refused = ValidationError(
        {
            name: [
                "Give an ISO 8601 time with its offset (2026-03-29T01:30:00Z) "
                "or unix seconds (1774747800)."
            ]
        }
    )
    try:
        if UNIX_SECONDS.match(text):
            return datetime.fromtimestamp(float(text), UTC)
        # An unencoded "+01:00" arrives as " 01:00".
        parsed = parse_datetime(text) or parse_datetime(text.replace(" ", "+"))
    except (ValueError, OverflowError, OSError):
        raise refused from None
    if parsed is None or parsed.tzinfo is None:
        raise refused
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first instant
        raise ValidationError({name: ["That time is out of range."]}) from None


def query_time_ms(raw: str, name: str) -> datetime:
    """A query parameter's time as Grafana sends it (${__from}: unix milliseconds, a whole
    number) or ISO 8601 with its offset, as an aware UTC datetime; else a 400 naming the
    parameter. A bare number is milliseconds here, never seconds: both are digits alone."""
    text = raw.strip()
    refused = ValidationError(
        {
            name: [
                "Give unix milliseconds (1774747800000, as Grafana's ${__from}) or an "
                "ISO 8601 time with its offset (2026-03-29T01:30:00Z)."
            ]
        }
    )
    if UNIX_MILLISECONDS.match(text):
        try:
            return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(text))
        except OverflowError:
            raise ValidationError({name: ["That time is out of range."]}) from None
    if UNIX_SECONDS.match(text):  # a fraction: neither Grafana's nor ISO
        raise refused
    try:
        return query_time(text, name)
    except ValidationError as error:
        if "out of range" in str(error.detail):
            raise
        raise refused from None
