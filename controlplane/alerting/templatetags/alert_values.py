"""An alert's value on its pages, written as the rule's annotations write it.

    {% load alert_values %}
    <data value="{{ alert.value|exact_value }}">{{ alert.value|humanize }}</data>

`humanize` is `{{ $value | humanize }}` (four significant digits and an SI prefix:
0.379746835443038 is "379.7m"), so a page and the summary beside it agree and a
long float cannot widen the table; `exact_value` is `{{ $value }}`, every digit,
for a tooltip or a machine. Both spell NaN, +Inf and -Inf as Prometheus does.
"""

from __future__ import annotations

from django import template

from controlplane.alerting import templates

register = template.Library()

_EXACT = "{{ $value }}"


def _number(value: object) -> float | None:
    # Strings too: NaN and the infinities travel through JSON as "NaN", "+Inf", "-Inf".
    # Anything else renders as nothing, as Django's own filters fail quietly.
    if value is None:
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


@register.filter
def humanize(value: object) -> str:
    """`{{ $value | humanize }}`; "" for no value (None) or one that is not a number."""
    number = _number(value)
    return "" if number is None else templates.humanize(number)


@register.filter
def exact_value(value: object) -> str:
    """`{{ $value }}`: the shortest digits that read back as the same float."""
    number = _number(value)
    return "" if number is None else templates.render(_EXACT, {}, number)
