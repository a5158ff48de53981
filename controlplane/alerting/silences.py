"""Silence matchers, as pure functions: which alerts a maintenance window covers.

Regular expressions are RE2, as in Prometheus and Alertmanager: the same syntax,
and matching in linear time, so no pattern a user saves can stall a worker.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import re2

OPS = ("=", "!=", "=~", "!~")


class MatcherError(ValueError):
    pass


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str
    pattern: re2._Regexp | None = field(default=None, compare=False, repr=False)

    def matches(self, subject: Mapping[str, str]) -> bool:
        actual = subject.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        # Anchored, as in Prometheus and Alertmanager.
        found = self.pattern.fullmatch(actual) is not None
        return found if self.op == "=~" else not found


def parse_matchers(data) -> list[Matcher]:
    """[{"name", "op", "value"}, …] -> matchers; at least one, each well formed."""
    if not isinstance(data, list) or not data:
        raise MatcherError(
            'Give at least one matcher, e.g. [{"name": "rule", "op": "=", "value": "api.5xx"}].'
        )
    matchers = []
    for position, item in enumerate(data, start=1):
        if not isinstance(item, dict) or set(item) - {"name", "op", "value"}:
            raise MatcherError(f"Matcher {position} must be an object with name, op and value.")
        name, op, value = item.get("name"), item.get("op", "="), item.get("value")
        if not isinstance(name, str) or not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name):
            raise MatcherError(f"Matcher {position}: {name!r} is not a label name.")
        if op not in OPS:
            raise MatcherError(f"Matcher {position}: the operator must be one of {' '.join(OPS)}.")
        if not isinstance(value, str):
            raise MatcherError(f"Matcher {position}: the value must be a string.")
        pattern = None
        if op in ("=~", "!~"):
            try:
                pattern = re2.compile(value)
            except re2.error as error:
                reason = error.args[0] if error.args else error
                if isinstance(reason, bytes):
                    reason = reason.decode(errors="replace")
                raise MatcherError(
                    f"Matcher {position}: invalid regular expression: {reason}."
                ) from None
        matchers.append(Matcher(name, op, value, pattern))
    return matchers


def subject(rule_key: str, service_slug: str | None, labels: Mapping[str, str]) -> dict[str, str]:
    """What matchers look at: the alert's labels plus `rule` and `service`."""
    return {**labels, "rule": rule_key, "service": service_slug or ""}


def covers(matchers: Iterable[Matcher], alert_subject: Mapping[str, str]) -> bool:
    return all(matcher.matches(alert_subject) for matcher in matchers)
