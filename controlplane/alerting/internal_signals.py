"""Internal signals: values a rule can read without Prometheus.

A bounded context registers a named function that measures something for one
organisation and returns series, each a label set and a value:

    from controlplane.alerting.internal_signals import register

    @register("jobs.overdue", "Seconds each job monitor is past its grace period.")
    def jobs_overdue(organization_id: int) -> list[Series]:
        ...

A rule with no source and `expr = "jobs.overdue"` then alerts on it like on PromQL
(with `op` and `threshold`, `for`, `keep_firing_for`). Calendars will register
`calendar.queue` the same way. This module imports no model, so any context
(and `alerting.models` itself) can import it; the alerting engine's own measures
live in `alerting.measures`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Series:
    labels: Mapping[str, str]
    value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))


@dataclass(frozen=True)
class InternalSignal:
    name: str
    description: str
    measure: Callable[[int], list[Series]] = field(repr=False)


registry: dict[str, InternalSignal] = {}


def register(name: str, description: str):
    def decorate(measure: Callable[[int], list[Series]]) -> Callable[[int], list[Series]]:
        if name in registry and registry[name].measure is not measure:
            raise ValueError(f"the internal signal {name!r} is registered twice")
        registry[name] = InternalSignal(name, description, measure)
        return measure

    return decorate


def measure(name: str, organization_id: int) -> list[Series]:
    return registry[name].measure(organization_id)
