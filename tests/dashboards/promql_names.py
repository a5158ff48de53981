"""The series names a PromQL expression reads, from Prometheus' own formatting of it
(/api/v1/format_query), and the names a /metrics exposition declares.

Python has no PromQL parser; Prometheus formats the query (which also proves it parses),
after which names are what is left once strings, label matchers, ranges, grouping
clauses, function calls, keywords and numbers are taken out.
"""

from __future__ import annotations

import re

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:]|\s*\()")
_KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan", "start", "end",
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}  # fmt: skip
_NAME_MATCHER = re.compile(r'__name__\s*=~?\s*"([^"]*)"')
# Samples a family of each type writes, by suffix.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
    "untyped": ("",),
    "unknown": ("",),
}


def series_names(formatted: str) -> set[str]:
    """The metric names an expression (as format_query returns it) selects. A
    `{__name__=~"a|b"}` selector names each alternative."""
    names = set()
    for matched in _NAME_MATCHER.findall(formatted):
        names.update(part for part in matched.split("|") if part)
    text = _STRING.sub('""', formatted)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    for name in _IDENTIFIER.findall(text):
        if name.lower() not in _KEYWORDS:  # numbers never match: they start with a digit
            names.add(name)
    return names


def exported_names(exposition: str) -> set[str]:
    """Every sample name the families of a text exposition (`# TYPE` lines) may write."""
    names = set()
    for family, kind in re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.M):
        base = family.removesuffix("_total") if kind == "counter" else family
        names.update(base + suffix for suffix in SUFFIXES.get(kind, ("",)))
    return names
