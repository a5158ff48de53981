"""The control plane's paging timeline as Grafana annotations: pure functions, no I/O.

Grafana draws an annotation as a mark (or a band, when it has an end) on every graph of
a dashboard, read here through the Infinity data source from `GET /api/v1/annotations/`
(controlplane/api/annotations.py, which reads the rows and builds the links). Three
kinds of moment are drawn:

- `alert`: an alert opened, acknowledged or resolved (its timeline, AlertEvent);
- `notification`: a message sent, or given up (the delivery ledger, Notification);
- `silence`: a maintenance window, from its start to its end.

Everything a person reads here is already on the alert's page for the same readers:
the acknowledger as that page names them (a username, a token's name), never an
address. The answer is JSON data: a `<script>` in a label stays a string.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from controlplane.alerting.silences import MatcherError, parse_matchers

ALERT, NOTIFICATION, SILENCE = "alert", "notification", "silence"
KINDS = (ALERT, NOTIFICATION, SILENCE)
# The alert timeline's kinds drawn, and the events they are drawn as (the same words).
ALERT_EVENTS = ("opened", "acknowledged", "resolved")
SENT, GIVEN_UP = "sent", "given_up"
CREATED = "created"
# Drawn in this order when they share a millisecond: cause before consequence.
_ORDER = {
    (SILENCE, CREATED): 0,
    (ALERT, "opened"): 1,
    (NOTIFICATION, SENT): 2,
    (NOTIFICATION, GIVEN_UP): 3,
    (ALERT, "acknowledged"): 4,
    (ALERT, "resolved"): 5,
}
# A filter's name -> the name a silence's matchers use for the same thing.
MATCHER_NAMES = {"rule": "rule", "service": "service", "slo": "slo", "job": "job"}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


class Annotation(TypedDict):
    time: int
    timeEnd: int  # Grafana's column name
    title: str
    text: str
    tags: list[str]
    kind: str
    event: str
    url: str
    trace_id: str
    trace_url: str


@dataclass(frozen=True)
class AlertFacts:
    """What every annotation about one alert says of it."""

    id: int
    organization: str  # slug
    rule_key: str
    severity: str
    service: str  # slug, "" without one
    slo: str  # slug, "" when no SLO opened it
    labels: Mapping[str, str]
    summary: str
    is_test: bool
    url: str  # the alert's page, absolute


@dataclass(frozen=True)
class AlertMoment:
    """One event of an alert's timeline: opened, acknowledged or resolved."""

    id: int
    at: datetime
    event: str
    actor: str  # as the alert page names the actor
    note: str
    trace_id: str
    alert: AlertFacts


@dataclass(frozen=True)
class Delivery:
    """A notification delivered (at its sent_at) or given up."""

    id: int
    at: datetime
    outcome: str  # SENT or GIVEN_UP
    channel: str
    channel_kind: str
    message: str  # trigger, reminder, acknowledge, resolve
    attempts: int
    error: str
    trace_id: str
    alert: AlertFacts


@dataclass(frozen=True)
class Window:
    """A silence: a maintenance window, drawn from its start to its end."""

    id: int
    organization: str
    starts_at: datetime
    ends_at: datetime
    comment: str
    matchers: Sequence[Mapping[str, Any]]
    url: str


def unix_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, exactly (no float rounding), as Grafana counts."""
    return (moment - _EPOCH) // _MILLISECOND


def from_unix_ms(milliseconds: int) -> datetime:
    """The instant `milliseconds` after the epoch; OverflowError outside years 1-9999."""
    return _EPOCH + timedelta(milliseconds=milliseconds)


def _alert_tags(alert: AlertFacts) -> list[str]:
    tags = [f"organization:{alert.organization}", f"rule:{alert.rule_key}"]
    tags.append(f"severity:{alert.severity}")
    if alert.service:
        tags.append(f"service:{alert.service}")
    if alert.slo:
        tags.append(f"slo:{alert.slo}")
    if alert.labels.get("job"):
        tags.append(f"job:{alert.labels['job']}")
    if alert.is_test:
        tags.append("test")
    return tags


def _labels_text(labels: Mapping[str, str]) -> str:
    return ", ".join(f'{name}="{value}"' for name, value in sorted(labels.items()))


def of_moment(moment: AlertMoment, trace_url: Callable[[str], str]) -> Annotation:
    alert = moment.alert
    headline = f"{alert.rule_key} {moment.event}"
    if moment.event == "opened":
        title = f"{headline} ({alert.severity})"
        lines = [alert.summary, _labels_text(alert.labels)]
    else:
        title = f"{headline} by {moment.actor}" if moment.actor else headline
        lines = [alert.summary]
    lines.append(moment.note)
    time = unix_ms(moment.at)
    return Annotation(
        time=time,
        timeEnd=time,
        title=title,
        text="\n".join(line for line in lines if line),
        tags=[f"kind:{ALERT}", f"event:{moment.event}", *_alert_tags(alert)],
        kind=ALERT,
        event=moment.event,
        url=alert.url,
        trace_id=moment.trace_id,
        trace_url=trace_url(moment.trace_id),
    )


def of_delivery(delivery: Delivery, trace_url: Callable[[str], str]) -> Annotation:
    alert = delivery.alert
    where = f"{delivery.channel} ({delivery.channel_kind})"
    if delivery.outcome == SENT:
        title = f"{alert.rule_key}: {delivery.message} sent to {where}"
    else:
        title = f"{alert.rule_key}: {delivery.message} to {where} given up"
    attempts = f"{delivery.attempts} attempt{'s' if delivery.attempts != 1 else ''}"
    lines = [alert.summary, attempts, delivery.error if delivery.outcome == GIVEN_UP else ""]
    time = unix_ms(delivery.at)
    return Annotation(
        time=time,
        timeEnd=time,
        title=title,
        text="\n".join(line for line in lines if line),
        tags=[
            f"kind:{NOTIFICATION}",
            f"event:{delivery.outcome}",
            f"channel_kind:{delivery.channel_kind}",
            f"message:{delivery.message}",
            *_alert_tags(alert),
        ],
        kind=NOTIFICATION,
        event=delivery.outcome,
        url=alert.url,
        trace_id=delivery.trace_id,
        trace_url=trace_url(delivery.trace_id),
    )


def _matcher_text(matchers: Iterable[Mapping[str, Any]]) -> str:
    return ", ".join(
        f"{m.get('name')}{m.get('op', '=')}{m.get('value')}"
        for m in matchers
        if isinstance(m, dict)
    )


def of_window(window: Window) -> Annotation:
    """A silence as a band; its equality matchers on rule, service, SLO and job are its
    tags, so a dashboard filtering by tag finds the windows that name its subject."""
    tags = [f"kind:{SILENCE}", f"event:{CREATED}", f"organization:{window.organization}"]
    for matcher in window.matchers:
        if not isinstance(matcher, dict):
            continue
        name, op = matcher.get("name"), matcher.get("op", "=")
        if name in MATCHER_NAMES.values() and op == "=":
            tags.append(f"{name}:{matcher.get('value')}")
    return Annotation(
        time=unix_ms(window.starts_at),
        timeEnd=unix_ms(window.ends_at),
        title=f"Silence: {_matcher_text(window.matchers)}",
        text=window.comment,
        tags=tags,
        kind=SILENCE,
        event=CREATED,
        url=window.url,
        trace_id="",
        trace_url="",
    )


def could_cover(matchers: Sequence[Mapping[str, Any]], wanted: Mapping[str, Sequence[str]]) -> bool:
    """Whether a silence may cover alerts of the wanted subjects: for each filter
    (rule, service, slo, job -> accepted values), some accepted value passes every
    matcher on that name. Matchers on other labels cannot be judged without an alert:
    they do not rule a silence out. Unreadable matchers (saved before a check existed)
    do not either: the window is drawn rather than hidden."""
    try:
        parsed = parse_matchers(list(matchers))
    except MatcherError:
        return True
    for name, values in wanted.items():
        label = MATCHER_NAMES[name]
        on_label = [m for m in parsed if m.name == label]
        if on_label and not any(all(m.matches({label: v}) for m in on_label) for v in values):
            return False
    return True


def _sort_key(annotation: Annotation) -> tuple[int, int]:
    return annotation["time"], _ORDER[(annotation["kind"], annotation["event"])]


def assemble(
    moments: Iterable[AlertMoment],
    deliveries: Iterable[Delivery],
    windows: Iterable[Window],
    trace_url: Callable[[str], str],
    limit: int,
) -> list[Annotation]:
    """Every annotation in time order; past `limit`, the latest `limit` of them (the
    moments a dashboard is most often opened for)."""
    found = [of_moment(m, trace_url) for m in moments]
    found += [of_delivery(d, trace_url) for d in deliveries]
    found += [of_window(w) for w in windows]
    found.sort(key=_sort_key)
    return found[-limit:] if limit > 0 else []
