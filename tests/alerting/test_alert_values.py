"""An alert's value on its pages: humanized as annotations are, the exact digits kept aside."""

import math

import pytest
from django.template import Context, Template

from controlplane.alerting import lifecycle
from controlplane.alerting.templatetags.alert_values import exact_value, humanize
from controlplane.catalog.actors import BEAT
from controlplane.catalog.models import Role
from tests.factories import make_rule

# value, {{ $value | humanize }}, {{ $value }}
VALUES = [
    (0.379746835443038, "379.7m", "0.379746835443038"),
    (0.1 + 0.2, "300m", "0.30000000000000004"),
    (0, "0", "0"),
    (7, "7", "7"),
    (1234, "1.234k", "1234"),
    (999.95, "1000", "999.95"),
    (1234567, "1.235M", "1.234567e+06"),
    (123456789012.0, "123.5G", "1.23456789012e+11"),
    (-0.5, "-500m", "-0.5"),
    (0.0012, "1.2m", "0.0012"),
    (2.5e-7, "250n", "2.5e-07"),
    (1e30, "1e+06Y", "1e+30"),
    (math.nan, "NaN", "NaN"),
    (math.inf, "+Inf", "+Inf"),
    (-math.inf, "-Inf", "-Inf"),
    # As NaN and the infinities come back from JSON.
    ("NaN", "NaN", "NaN"),
    ("+Inf", "+Inf", "+Inf"),
    ("-Inf", "-Inf", "-Inf"),
    ("0.25", "250m", "0.25"),
    # No value, or none that reads as a number: nothing, as Django's filters fail quietly.
    (None, "", ""),
    ("", "", ""),
    ("high", "", ""),
    ([1], "", ""),
]


@pytest.mark.parametrize(("value", "humanized", "exact"), VALUES)
def test_values_are_written_as_prometheus_writes_them(value, humanized, exact):
    assert humanize(value) == humanized
    assert exact_value(value) == exact


def test_the_filters_load_in_a_template():
    template = Template("{% load alert_values %}{{ v|humanize }} {{ v|exact_value }}")

    assert template.render(Context({"v": 0.379746835443038})) == "379.7m 0.379746835443038"


@pytest.mark.django_db
def test_the_alert_pages_show_the_humanized_value_and_keep_the_exact_one(
    client, member, org, service
):
    client.force_login(member(org, Role.VIEWER))
    rule = make_rule(org, "checkout.ratio", service=service, severity="critical")
    alert, _ = lifecycle.open_alert(rule, "ratio", {}, 0.379746835443038, {}, actor=BEAT)
    without, _ = lifecycle.open_alert(rule, "none", {"instance": "b"}, None, {}, actor=BEAT)
    shown = (
        '<data class="alert-value" value="0.379746835443038" title="0.379746835443038">'
        "379.7m</data>"
    )

    listed = client.get("/alerts/").content.decode()
    detail = client.get(alert.get_absolute_url()).content.decode()
    empty = client.get(without.get_absolute_url()).content.decode()

    assert shown in listed
    assert shown in detail
    assert "<dt>Value</dt><dd>—</dd>" in empty
