"""Serializer fields the API shares."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from controlplane.alerting.models import KEY_VALIDATOR
from controlplane.promql import values

NON_FINITE = list(values.NON_FINITE)


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
