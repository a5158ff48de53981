"""Annotation templates: Prometheus' template syntax, cut down to what is safe.

    {{ $labels.instance }} is at {{ $value | humanizePercentage }}

An action is `$value` or `$labels.NAME`, optionally piped through one of
`humanize`, `humanizePercentage` or `humanizeDuration`, which apply to `$value`.
A label the series lacks renders as "" (as in Prometheus). There is no other
logic: no conditionals, no loops, nothing evaluated.
"""

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from controlplane.promql.values import spell


class TemplateError(ValueError):
    """The template cannot be rendered; the message says where and why."""


def _go_float(value: float) -> str:
    """A float as Go prints `{{ $value }}`: shortest digits, 1e+06 from a million."""
    if (spelled := spell(value)) is not None:
        return spelled
    number = Decimal(repr(value))
    exponent = number.adjusted()
    if -4 <= exponent < 6:
        text = format(number, "f")
        return text[:-2] if text.endswith(".0") else text
    sign, digits, _ = number.as_tuple()
    mantissa = str(digits[0])
    if len(digits) > 1:
        mantissa += "." + "".join(str(d) for d in digits[1:]).rstrip("0")
    mantissa = mantissa.rstrip(".")
    return f"{'-' if sign else ''}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"


def _g4(value: float) -> str:
    """Go's %.4g."""
    if (spelled := spell(value)) is not None:
        return spelled
    return f"{value:.4g}"


def _scaled(value: float, big: tuple[str, ...], small: tuple[str, ...]) -> tuple[float, str]:
    prefix = ""
    if abs(value) >= 1:
        for candidate in big:
            if abs(value) < 1000:
                break
            prefix = candidate
            value /= 1000
    else:
        for candidate in small:
            if abs(value) >= 1:
                break
            prefix = candidate
            value *= 1000
    return value, prefix


_BIG = ("k", "M", "G", "T", "P", "E", "Z", "Y")
_SMALL = ("m", "u", "n", "p", "f", "a", "z", "y")


def humanize(value: float) -> str:
    """1234 -> "1.234k", 0.0012 -> "1.2m" (SI prefixes, four significant digits)."""
    if value == 0 or not math.isfinite(value):
        return _g4(value)
    scaled, prefix = _scaled(value, _BIG, _SMALL)
    return _g4(scaled) + prefix


def humanize_percentage(value: float) -> str:
    """0.1234 -> "12.34%"."""
    return _g4(value * 100) + "%"


def humanize_duration(value: float) -> str:
    """Seconds as "1d 2h 3m 4s", "1m 5s", "1.5s" or "250ms"."""
    if not math.isfinite(value):
        return _g4(value)
    if value == 0:
        return _g4(value) + "s"
    if abs(value) >= 1:
        sign = "-" if value < 0 else ""
        seconds_total = int(abs(value))
        days, rest = divmod(seconds_total, 86400)
        hours, rest = divmod(rest, 3600)
        minutes, seconds = divmod(rest, 60)
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_g4(abs(value))}s"
    scaled, prefix = _scaled(value, (), _SMALL)
    return f"{_g4(scaled)}{prefix}s"


FILTERS: dict[str, Callable[[float], str]] = {
    "humanize": humanize,
    "humanizePercentage": humanize_percentage,
    "humanizeDuration": humanize_duration,
}

_ACTION = re.compile(
    r"""\s*
    (?P<variable>\$[A-Za-z_][A-Za-z0-9_]*)
    (?:\.(?P<label>[A-Za-z_][A-Za-z0-9_]*))?
    \s*
    (?:\|\s*(?P<filter>[A-Za-z_][A-Za-z0-9_]*)\s*)?
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Action:
    label: str | None  # None: $value
    filter: str | None


def _where(template: str, offset: int) -> str:
    line = template.count("\n", 0, offset) + 1
    column = offset - (template.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def _parse_action(template: str, start: int, body: str) -> _Action:
    where = _where(template, start)
    if not body.strip():
        raise TemplateError(f"empty {{{{ }}}} at {where}")
    match = _ACTION.fullmatch(body)
    if match is None:
        raise TemplateError(
            f"cannot read {{{{{body}}}}} at {where}: "
            "use $value or $labels.NAME, optionally followed by | humanize, "
            "| humanizePercentage or | humanizeDuration"
        )
    variable, label, filter_name = match.group("variable", "label", "filter")
    if variable == "$labels":
        if label is None:
            raise TemplateError(f"$labels needs a label name, as in $labels.instance, at {where}")
    elif variable == "$value":
        if label is not None:
            raise TemplateError(f"$value has no field {label!r} at {where}")
    else:
        raise TemplateError(f"unknown variable {variable!r} at {where}: use $value or $labels.NAME")
    if filter_name is not None:
        if filter_name not in FILTERS:
            raise TemplateError(
                f"unknown function {filter_name!r} at {where}: use one of {', '.join(FILTERS)}"
            )
        if variable != "$value":
            raise TemplateError(f"{filter_name} applies to $value only, at {where}")
    return _Action(label=label, filter=filter_name)


def _parse(template: str) -> list[str | _Action]:
    parts: list[str | _Action] = []
    position = 0
    while True:
        start = template.find("{{", position)
        if start < 0:
            parts.append(template[position:])
            return parts
        end = template.find("}}", start + 2)
        if end < 0:
            raise TemplateError(f"unclosed {{{{ at {_where(template, start)}")
        parts.append(template[position:start])
        parts.append(_parse_action(template, start, template[start + 2 : end]))
        position = end + 2


def check(template: str) -> None:
    """Raise TemplateError if `template` would not render."""
    _parse(template)


def render(template: str, labels: Mapping[str, str], value: float) -> str:
    """Fill in `template` for one alert instance; raises TemplateError as `check` does."""
    out = []
    for part in _parse(template):
        if isinstance(part, str):
            out.append(part)
        elif part.label is not None:
            out.append(labels.get(part.label, ""))
        elif part.filter is not None:
            out.append(FILTERS[part.filter](value))
        else:
            out.append(_go_float(value))
    return "".join(out)
