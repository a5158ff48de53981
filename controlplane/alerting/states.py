"""The rule state machine, as Prometheus runs it, in pure functions.

Each label set a rule's query returns is one alert instance:

    inactive -> pending  (condition true for less than `for`)
             -> firing   (true for `for` or longer; at once when `for` is zero)
             -> resolved (false at an evaluation `keep_firing_for` or more after
                          the first evaluation that found it false: Prometheus'
                          KeepFiringSince)

A pending instance whose condition goes false is simply dropped ("cleared").
The caller stores the instances of a rule between evaluations (they are JSON
friendly) and acts on the transitions each `step` returns.
"""

import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal, Protocol, TypeVar

from controlplane.alerting.fingerprints import fingerprint
from controlplane.promql.values import to_json

State = Literal["pending", "firing"]
RuleState = Literal["inactive", "pending", "firing", "unknown"]
TransitionKind = Literal["pending", "firing", "resolved", "cleared"]

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


class Measured(Protocol):
    """Anything with labels and a value, such as a `prometheus.Sample`."""

    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def value(self) -> float: ...


M = TypeVar("M", bound=Measured)


class DuplicateLabelSet(ValueError):
    """Two series of one result share a label set once the metric name is dropped."""


def _frozen(labels: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(labels))


@dataclass(frozen=True)
class InstanceState:
    fingerprint: str
    labels: Mapping[str, str] = field(hash=False)
    state: State
    active_since: datetime
    last_true_at: datetime
    value: float
    fired_at: datetime | None = None
    # The first evaluation that found the condition false while firing; the
    # instance resolves once `keep_firing_for` has passed since then.
    keep_firing_since: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen(self.labels))

    def to_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "labels": dict(self.labels),
            "state": self.state,
            "active_since": self.active_since.isoformat(),
            "last_true_at": self.last_true_at.isoformat(),
            "value": to_json(self.value),
            "fired_at": _iso(self.fired_at),
            "keep_firing_since": _iso(self.keep_firing_since),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "InstanceState":
        return cls(
            fingerprint=data["fingerprint"],
            labels=data["labels"],
            state=data["state"],
            active_since=datetime.fromisoformat(data["active_since"]),
            last_true_at=datetime.fromisoformat(data["last_true_at"]),
            value=float(data["value"]),
            fired_at=_parse_iso(data.get("fired_at")),
            keep_firing_since=_parse_iso(data.get("keep_firing_since")),
        )


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _parse_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class Transition:
    fingerprint: str
    labels: Mapping[str, str] = field(hash=False)
    kind: TransitionKind
    value: float
    at: datetime
    active_since: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen(self.labels))


def dump_instances(instances: Mapping[str, InstanceState]) -> list[dict[str, Any]]:
    """Instances as a JSON-ready list, in fingerprint order."""
    return [instances[key].to_dict() for key in sorted(instances)]


def load_instances(data: Iterable[Mapping[str, Any]] | None) -> dict[str, InstanceState]:
    """The inverse of `dump_instances`; None (a rule never evaluated) gives no instances."""
    instances = (InstanceState.from_dict(item) for item in data or ())
    return {instance.fingerprint: instance for instance in instances}


def breaching(samples: Iterable[M], op: str | None, threshold: float | None) -> list[M]:
    """The samples whose value meets the rule's condition.

    With no operator every returned series breaches, whatever its value (NaN
    included): the query is the condition, as in a Prometheus rule. A comparison
    on NaN is IEEE's, as in PromQL: `NaN != 1` holds, `NaN > 1` does not.
    """
    if op is None:
        return list(samples)
    if op not in OPERATORS:
        raise ValueError(f"unknown operator {op!r}; use one of {' '.join(OPERATORS)}")
    if threshold is None or math.isnan(threshold):
        raise ValueError(f"operator {op!r} needs a threshold")
    compare = OPERATORS[op]
    return [sample for sample in samples if compare(sample.value, threshold)]


def by_fingerprint(
    rule_key: str, samples: Iterable[Measured], rule_labels: Mapping[str, str] | None = None
) -> dict[str, tuple[Mapping[str, str], float]]:
    """Key samples by their instance fingerprint, ready for `step`.

    The labels kept are the query result's, `__name__` included where the result
    has it (annotations see them as `$labels`, as in Prometheus). The metric name
    is not part of an alert's identity, so two series that differ only by name
    are one instance: that is an error. So are two series that the rule's labels
    make alike (a label overridden or emptied): Prometheus refuses such a result
    ("same labelset after applying alert labels") rather than open two alerts that
    no one could tell apart.
    """
    keyed: dict[str, tuple[Mapping[str, str], float]] = {}
    built: set[tuple[tuple[str, str], ...]] = set()
    for sample in samples:
        identity = {name: value for name, value in sample.labels.items() if name != "__name__"}
        key = fingerprint(rule_key, identity)
        if key in keyed:
            raise DuplicateLabelSet(
                f"the query returns more than one series with the labels {identity}; "
                "aggregate them or keep a label that tells them apart"
            )
        final = tuple(sorted(alert_labels(sample.labels, rule_labels or {}).items()))
        if final in built:
            raise DuplicateLabelSet(
                f"two series have the same labels {dict(final)} once the rule's labels "
                "are applied; keep a label that tells them apart"
            )
        built.add(final)
        keyed[key] = (dict(sample.labels), sample.value)
    return keyed


def alert_labels(result: Mapping[str, str], rule: Mapping[str, str]) -> dict[str, str]:
    """An alert's labels as Prometheus builds them: the result's without `__name__`,
    the rule's on top, and a label whose value is empty dropped (so an empty rule
    label removes the result's label of that name)."""
    merged = {name: value for name, value in result.items() if name != "__name__"}
    merged.update(rule)
    return {name: value for name, value in merged.items() if value != ""}


def step(
    previous: Mapping[str, InstanceState],
    samples: Mapping[str, tuple[Mapping[str, str], float]],
    now: datetime,
    for_: timedelta,
    keep_firing_for: timedelta = timedelta(0),
) -> tuple[dict[str, InstanceState], list[Transition]]:
    """One evaluation: the breaching series now (keyed by fingerprint) against before."""
    current: dict[str, InstanceState] = {}
    transitions: list[Transition] = []

    def record(kind: TransitionKind, instance: InstanceState) -> None:
        transitions.append(
            Transition(
                fingerprint=instance.fingerprint,
                labels=instance.labels,
                kind=kind,
                value=instance.value,
                at=now,
                active_since=instance.active_since,
            )
        )

    for key, (labels, value) in samples.items():
        before = previous.get(key)
        if before is None:
            instance = InstanceState(
                fingerprint=key,
                labels=labels,
                state="pending",
                active_since=now,
                last_true_at=now,
                value=value,
            )
        else:
            instance = InstanceState(
                fingerprint=key,
                labels=labels,
                state=before.state,
                active_since=before.active_since,
                last_true_at=now,
                value=value,
                fired_at=before.fired_at,
            )  # true again: keep_firing_since starts over

        if instance.state == "pending" and now - instance.active_since >= for_:
            instance = InstanceState(
                fingerprint=key,
                labels=labels,
                state="firing",
                active_since=instance.active_since,
                last_true_at=now,
                value=value,
                fired_at=now,
            )
            record("firing", instance)
        elif before is None:
            record("pending", instance)
        current[key] = instance

    for key, before in previous.items():
        if key in samples:
            continue
        if before.state == "pending":
            record("cleared", before)
            continue
        since = before.keep_firing_since or now
        if keep_firing_for > timedelta(0) and now - since < keep_firing_for:
            current[key] = replace(before, keep_firing_since=since)
        else:
            record("resolved", before)

    return current, transitions


def step_unknown(
    previous: Mapping[str, InstanceState], now: datetime
) -> tuple[dict[str, InstanceState], list[Transition]]:
    """An evaluation whose source failed: missing data is not recovery.

    Nothing moves; in particular `keep_firing_for` does not run out and no
    firing instance resolves while its source cannot be read.
    """
    return dict(previous), []


def rule_state(instances: Mapping[str, InstanceState]) -> RuleState:
    """The rule's state from its instances ("unknown" is the caller's to set)."""
    states = {instance.state for instance in instances.values()}
    if "firing" in states:
        return "firing"
    if "pending" in states:
        return "pending"
    return "inactive"


def source_down_due(failing_since: datetime | None, now: datetime, threshold: timedelta) -> bool:
    """Whether a source failing since `failing_since` has failed long enough to alert."""
    return failing_since is not None and now - failing_since >= threshold
