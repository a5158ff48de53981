"""Alerts from Alertmanager: its webhook payload (version 4) read and judged, purely.

`parse(body)` turns the bytes an Alertmanager posts into a `Payload`, or raises a
`PayloadError`, one of two: `Malformed` (HTTP 400) or `TooLarge` (413), each naming
the field (`alerts[2].fingerprint`) and saying what was expected. Unknown keys are
accepted at every level: newer Alertmanagers add some (`notification_reason`,
`routeLabels`), and keys we do not use are not checked.

`decide(payload, held, now, runbooks)` says what to do with each alert, given what we
hold for its fingerprint (`Held`); the edge (paging/intake.py) loads that and carries
the actions out through alerting.lifecycle, so the alert outbox starts and stops the
escalation as for our own alerts. Nothing here reads the database, the settings or the
clock: every rule below is a table in tests/paging/test_alertmanager.py.

Rules
-----
1. Identity. An alert is its Alertmanager fingerprint within one integration
   (Alertmanager computes it from the labels: the same labels are the same alert).
   Our fingerprint for it is `am:<integration id>:<fingerprint>` (`alert_fingerprint`).
2. Firing, nothing open of the fingerprint: open an alert, unless this occurrence was
   resolved here already, that is, an alert of the fingerprint resolved whose start is
   at or after this one's. A late retry of an old notification does not re-open what is
   over, and a person's resolve stands until Alertmanager reports a new occurrence
   (which has a later `startsAt`).
3. Firing, one open: update its labels, annotations, severity, name and runbook when
   one of them differs (Alertmanager re-sends an alert whose annotations changed);
   otherwise nothing.
4. Resolved, one open: resolve it at `endsAt` (kept between its start and now).
5. Firing or resolved, of an earlier occurrence than the open one (it started before):
   nothing. A late notification neither resolves nor rewrites a newer occurrence.
6. Resolved, nothing open: nothing (resolved already, or never seen firing).
7. So the same payload twice changes nothing, and an alert firing again after its
   resolve (a new `startsAt`) opens a new alert.

What an opened alert carries
----------------------------
- its name (`rule_key`): the `alertname` label, else "alertmanager";
- its severity: the `severity` label read through `SEVERITY_NAMES` (case and spaces
  aside), else `warning`;
- its summary, for notifications: the `summary` annotation, else `description`, else
  `message` (`summary_of`);
- its runbook: the `runbook_url` annotation, else the `runbook` label, each either an
  absolute http(s) address, kept as it is, or the slug of one of the organisation's (or
  the shared) runbooks, which becomes that runbook's page (`runbooks` maps the slugs
  that exist to their paths). Anything else is no link;
- its start: `startsAt`, or now when that is later (a clock ahead of ours must not hold
  the escalation back). Escalation steps count from it, as from our own alerts' start;
  a start before 1970 is refused, since the steps of decades would all be due at once.

Limits
------
A body of at most MAX_BODY_BYTES, at most MOST_ALERTS alerts (both 413 past them);
per alert at most MOST_LABELS labels of LABELS_TOTAL characters in all, and
MOST_ANNOTATIONS annotations of ANNOTATIONS_TOTAL (400). Text holding a NUL or a lone
surrogate (which JSON can spell and no database stores) is refused naming its field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal

VERSION = "4"
# A body and an alert count that one request may hold: Alertmanager sends a whole group
# in one request, unless its webhook_config sets max_alerts.
MAX_BODY_BYTES = 2 * 1024 * 1024
MOST_ALERTS = 1000
# Per alert: bounded in number and in total, as a rule's are (they are copied into every
# notification), a little wider since Prometheus' own labels come along.
MOST_LABELS = 64
LABELS_TOTAL = 16384  # characters of names and values together
MOST_ANNOTATIONS = 32
ANNOTATIONS_TOTAL = 65536
# Alertmanager writes 16 hexadecimal digits; a hand-written sender may use its own ids.
FINGERPRINT = re.compile(r"^[A-Za-z0-9._-]{1,40}$")
# Alert.rule_key's length.
LONGEST_NAME = 100
# Links we keep: the longest a reader's client opens (payloads.LONGEST_LINK).
LONGEST_LINK = 800
DEFAULT_NAME = "alertmanager"
DEFAULT_SEVERITY = "warning"
# Alertmanager's endsAt while an alert fires.
ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
EARLIEST_START = datetime(1970, 1, 1, tzinfo=UTC)

# The `severity` label's usual spellings, onto our three severities (alerting.Severity).
SEVERITY_NAMES: Mapping[str, str] = MappingProxyType(
    {
        **dict.fromkeys(
            (
                *("critical", "crit", "page", "error", "err", "high", "major"),
                *("fatal", "emergency", "disaster", "p1"),
            ),
            "critical",
        ),
        **dict.fromkeys(("warning", "warn", "medium", "average", "minor", "p2", "p3"), "warning"),
        **dict.fromkeys(
            ("info", "information", "informational", "notice", "low", "none", "debug", "p4", "p5"),
            "info",
        ),
    }
)
SUMMARY_ANNOTATIONS = ("summary", "description", "message")

Status = Literal["firing", "resolved"]
STATUSES: tuple[Status, ...] = ("firing", "resolved")

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$"
)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")  # runbooks.content.SLUG_RE
_MISSING = object()


# --- errors ----------------------------------------------------------------------------


class PayloadError(ValueError):
    """A refused payload: `field` says where (`alerts[2].startsAt`), `message` why.

    Closed: a payload error is `Malformed` (answered 400) or `TooLarge` (413)."""

    status = 400

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Malformed(PayloadError):
    status = 400


class TooLarge(PayloadError):
    status = 413


# --- what a payload holds --------------------------------------------------------------


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class IncomingAlert:
    """One alert of a payload, checked."""

    index: int  # its place in `alerts`, for messages
    status: Status
    fingerprint: str
    labels: Mapping[str, str] = field(hash=False)
    annotations: Mapping[str, str] = field(hash=False)
    starts_at: datetime
    ends_at: datetime | None  # None: Alertmanager's zero time (still firing) or absent
    generator_url: str = ""  # kept only when a web address

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen(self.labels))
        object.__setattr__(self, "annotations", _frozen(self.annotations))


@dataclass(frozen=True)
class Payload:
    alerts: tuple[IncomingAlert, ...]
    # Alerts Alertmanager left out (its max_alerts): they never reach us.
    truncated_alerts: int = 0


# --- parsing ---------------------------------------------------------------------------


def parse(body: bytes) -> Payload:
    """The payload in `body`, checked; raises Malformed or TooLarge naming the field."""
    if len(body) > MAX_BODY_BYTES:
        raise TooLarge(
            "body", f"{len(body)} bytes; at most {MAX_BODY_BYTES} are read in one request."
        )
    data = _json(body)
    if not isinstance(data, dict):
        raise Malformed(
            "body",
            f"expected a JSON object (Alertmanager's webhook payload), got {_kind(data)}.",
        )
    version = data.get("version", _MISSING)
    if version is _MISSING:
        raise Malformed(
            "version", f'missing: this endpoint reads Alertmanager\'s webhook payload "{VERSION}".'
        )
    if version != VERSION:
        raise Malformed(
            "version",
            f'expected "{VERSION}" (Alertmanager\'s webhook payload version {VERSION}, a '
            f"string), got {_shown(version)}.",
        )
    truncated = data.get("truncatedAlerts", 0)
    if isinstance(truncated, bool) or not isinstance(truncated, int) or truncated < 0:
        raise Malformed("truncatedAlerts", f"expected a count, got {_shown(truncated)}.")
    alerts = data.get("alerts", _MISSING)
    if alerts is _MISSING:
        raise Malformed("alerts", "missing: the payload lists its alerts under `alerts`.")
    if not isinstance(alerts, list):
        raise Malformed("alerts", f"expected a list of alerts, got {_kind(alerts)}.")
    if len(alerts) > MOST_ALERTS:
        raise TooLarge(
            "alerts",
            f"{len(alerts)} alerts; at most {MOST_ALERTS} in one request (a webhook_config's "
            "max_alerts caps what Alertmanager sends, leaving the rest out).",
        )
    parsed: list[IncomingAlert] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(alerts):
        alert = _alert(index, raw)
        if alert.fingerprint in seen:
            raise Malformed(
                f"alerts[{index}].fingerprint",
                f"{alert.fingerprint!r} is also alerts[{seen[alert.fingerprint]}]'s: one "
                "payload lists each alert once.",
            )
        seen[alert.fingerprint] = index
        parsed.append(alert)
    return Payload(alerts=tuple(parsed), truncated_alerts=truncated)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Malformed("body", f"not UTF-8 text (byte {error.start} is not).") from None
    if not text.strip():
        raise Malformed("body", "empty: expected Alertmanager's webhook payload, a JSON object.")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise Malformed("body", "not JSON we read: nested too deeply.") from None
    except ValueError as error:  # json.JSONDecodeError is one
        raise Malformed("body", f"not JSON: {error}.") from None


def _alert(index: int, raw: object) -> IncomingAlert:
    where = f"alerts[{index}]"
    if not isinstance(raw, dict):
        raise Malformed(where, f"expected an alert (a JSON object), got {_kind(raw)}.")
    status = _required(raw, where, "status")
    if status not in STATUSES:
        raise Malformed(
            f"{where}.status", f'expected "firing" or "resolved", got {_shown(status)}.'
        )
    fingerprint = _required(raw, where, "fingerprint")
    if not isinstance(fingerprint, str) or not FINGERPRINT.match(fingerprint):
        raise Malformed(
            f"{where}.fingerprint",
            "expected 1 to 40 letters, digits, dots, dashes or underscores (Alertmanager "
            f"writes 16 hexadecimal digits), got {_shown(fingerprint)}.",
        )
    labels = _texts(
        _required(raw, where, "labels"), f"{where}.labels", "label", MOST_LABELS, LABELS_TOTAL
    )
    annotations = _texts(
        raw.get("annotations", {}),
        f"{where}.annotations",
        "annotation",
        MOST_ANNOTATIONS,
        ANNOTATIONS_TOTAL,
    )
    starts_at = _time(_required(raw, where, "startsAt"), f"{where}.startsAt")
    if starts_at == ZERO_TIME:
        raise Malformed(f"{where}.startsAt", "Alertmanager's zero time: an alert has a start.")
    if starts_at < EARLIEST_START:
        # Escalation counts from the start: a start centuries ago would be a storm.
        raise Malformed(f"{where}.startsAt", f"{_rfc3339(starts_at)} is before 1970.")
    ends_raw = raw.get("endsAt")
    ends_at = None if ends_raw in (None, "") else _time(ends_raw, f"{where}.endsAt")
    if ends_at == ZERO_TIME:
        ends_at = None
    generator = raw.get("generatorURL", "")
    if generator is None:
        generator = ""
    if not isinstance(generator, str):
        raise Malformed(f"{where}.generatorURL", f"expected a URL, got {_kind(generator)}.")
    return IncomingAlert(
        index=index,
        status=status,
        fingerprint=fingerprint,
        labels=labels,
        annotations=annotations,
        starts_at=starts_at,
        ends_at=ends_at,
        generator_url=web_link(generator),
    )


def _required(raw: dict, where: str, name: str) -> Any:
    value = raw.get(name, _MISSING)
    if value is _MISSING:
        raise Malformed(f"{where}.{name}", "missing.")
    return value


def _texts(value: object, where: str, what: str, most: int, total: int) -> dict[str, str]:
    """Labels or annotations: an object of strings, within the limits, storable."""
    if not isinstance(value, dict):
        raise Malformed(
            where, f"expected an object of {what} names to strings, got {_kind(value)}."
        )
    for name, text in value.items():
        if not isinstance(text, str):
            raise Malformed(
                where, f"the {what} {_shown(name)} is {_kind(text)}: {what} values are strings."
            )
        if _UNSTORABLE.search(name) or _UNSTORABLE.search(text):
            raise Malformed(
                where,
                f"the {what} {_shown(name)} holds a NUL or a lone surrogate (\\u0000, "
                "\\ud800 to \\udfff), which no text here can store.",
            )
    if len(value) > most:
        raise Malformed(where, f"{len(value)} {what}s; at most {most} per alert.")
    size = sum(len(name) + len(text) for name, text in value.items())
    if size > total:
        raise Malformed(
            where, f"{size} characters of {what} names and values; at most {total} per alert."
        )
    return dict(value)


def parse_time(text: str) -> datetime:
    """An RFC 3339 time (Alertmanager writes nanoseconds: cut to microseconds), in UTC.
    Raises ValueError."""
    match = _RFC3339.match(text)
    if match is None:
        raise ValueError("not an RFC 3339 time such as 2026-01-01T12:00:00Z")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    if zone in ("Z", "z"):
        offset = timedelta(0)
    else:
        sign = -1 if zone[0] == "-" else 1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        if abs(offset) >= timedelta(days=1):
            raise ValueError("its offset from UTC is a day or more")
    local = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro)
    try:
        return (local - offset).replace(tzinfo=UTC)
    except OverflowError:
        raise ValueError("out of the range of times") from None


def _time(value: object, where: str) -> datetime:
    if not isinstance(value, str):
        raise Malformed(where, f"expected an RFC 3339 time, got {_kind(value)}.")
    try:
        return parse_time(value)
    except ValueError as error:
        raise Malformed(where, f"{_shown(value)}: {error}.") from None


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {_shown(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _shown(value: object, limit: int = 60) -> str:
    """A value as JSON, cut for a message; what cannot be written whole is escaped."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- what an alert carries -------------------------------------------------------------


def web_link(url: str) -> str:
    """`url` when it is an absolute http(s) address a reader can open, else ""."""
    if not url or len(url) > LONGEST_LINK or not url.isascii() or not url.isprintable():
        return ""
    if " " in url:
        return ""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0]
    return url if scheme.lower() in ("http", "https") and host else ""


def alert_fingerprint(integration_id: int, fingerprint: str) -> str:
    """Our fingerprint of an Alertmanager alert: its own, within its integration."""
    return f"am:{integration_id}:{fingerprint}"


def name_of(labels: Mapping[str, str]) -> str:
    name = labels.get("alertname", "").strip()
    return name[:LONGEST_NAME] if name else DEFAULT_NAME


def severity_of(labels: Mapping[str, str]) -> str:
    spelled = labels.get("severity", "").strip().lower()
    return SEVERITY_NAMES.get(spelled, DEFAULT_SEVERITY)


def summary_of(annotations: Mapping[str, str]) -> str:
    """What a notification says the alert is about: the first of summary, description
    and message that says anything."""
    for name in SUMMARY_ANNOTATIONS:
        text = annotations.get(name, "").strip()
        if text:
            return text
    return ""


def _runbook_candidates(alert: IncomingAlert) -> list[str]:
    found = [alert.annotations.get("runbook_url", ""), alert.labels.get("runbook", "")]
    return [text.strip() for text in found if text.strip()]


def runbook_slugs(payload: Payload) -> set[str]:
    """The runbook slugs the payload's alerts may name: the edge looks these up."""
    return {
        candidate
        for alert in payload.alerts
        for candidate in _runbook_candidates(alert)
        if len(candidate) <= 64 and _SLUG.match(candidate)
    }


def runbook_of(alert: IncomingAlert, runbooks: Mapping[str, str]) -> str:
    """The alert's runbook link: an absolute address as given, or our runbook's page."""
    for candidate in _runbook_candidates(alert):
        if web_link(candidate):
            return candidate
        if candidate in runbooks:
            return runbooks[candidate]
    return ""


# --- deciding --------------------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """What an alert shows that a later notification from Alertmanager may change."""

    rule_key: str
    severity: str
    labels: Mapping[str, str] = field(hash=False)
    annotations: Mapping[str, str] = field(hash=False)
    runbook_url: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen(self.labels))
        object.__setattr__(self, "annotations", _frozen(self.annotations))


@dataclass(frozen=True)
class OpenAlert:
    alert_id: int
    started_at: datetime
    shown: Shown


@dataclass(frozen=True)
class Held:
    """What we hold for one Alertmanager fingerprint of the integration."""

    open: OpenAlert | None = None
    # The start of the latest resolved alert of the fingerprint (None: none resolved).
    resolved_start: datetime | None = None


@dataclass(frozen=True)
class Open:
    fingerprint: str  # Alertmanager's
    shown: Shown
    started_at: datetime
    details: Mapping[str, str] = field(hash=False)  # for the opening event


@dataclass(frozen=True)
class Update:
    alert_id: int
    fingerprint: str
    shown: Shown


@dataclass(frozen=True)
class Resolve:
    alert_id: int
    fingerprint: str
    at: datetime


@dataclass(frozen=True)
class Leave:
    """Nothing to do, and why."""

    fingerprint: str
    reason: str


Action = Open | Update | Resolve | Leave

UNCHANGED = "unchanged"
RESOLVED_ALREADY = "this occurrence was resolved here already"
NEVER_SEEN = "resolved, and never seen firing"
NOTHING_OPEN = "resolved already"
EARLIER_OCCURRENCE = "a notification of an earlier occurrence than the open one"


def shown_of(alert: IncomingAlert, runbooks: Mapping[str, str]) -> Shown:
    return Shown(
        rule_key=name_of(alert.labels),
        severity=severity_of(alert.labels),
        labels=alert.labels,
        annotations=alert.annotations,
        runbook_url=runbook_of(alert, runbooks),
    )


def _same(a: Shown, b: Shown) -> bool:
    return (a.rule_key, a.severity, dict(a.labels), dict(a.annotations), a.runbook_url) == (
        b.rule_key,
        b.severity,
        dict(b.labels),
        dict(b.annotations),
        b.runbook_url,
    )


def start_of(alert: IncomingAlert, now: datetime) -> datetime:
    return min(alert.starts_at, now)


def decide(
    payload: Payload,
    held: Mapping[str, Held],
    now: datetime,
    runbooks: Mapping[str, str] | None = None,
) -> tuple[Action, ...]:
    """One action per alert of the payload, in its order (the module's rules).

    `held` maps Alertmanager fingerprints to what we hold (absent: nothing); `runbooks`
    maps the slugs of the runbooks that exist to their pages."""
    runbooks = runbooks or {}
    return tuple(
        _decide_one(alert, held.get(alert.fingerprint, Held()), now, runbooks)
        for alert in payload.alerts
    )


def _decide_one(
    alert: IncomingAlert, held: Held, now: datetime, runbooks: Mapping[str, str]
) -> Action:
    started = start_of(alert, now)
    if alert.status == "firing":
        shown = shown_of(alert, runbooks)
        if held.open is not None:
            if started < held.open.started_at:
                return Leave(alert.fingerprint, EARLIER_OCCURRENCE)
            if _same(held.open.shown, shown):
                return Leave(alert.fingerprint, UNCHANGED)
            return Update(held.open.alert_id, alert.fingerprint, shown)
        if held.resolved_start is not None and held.resolved_start >= started:
            return Leave(alert.fingerprint, RESOLVED_ALREADY)
        details = {"fingerprint": alert.fingerprint, "starts_at": _rfc3339(alert.starts_at)}
        if alert.generator_url:
            details["generator_url"] = alert.generator_url
        return Open(alert.fingerprint, shown, started, details)
    if held.open is None:
        return Leave(alert.fingerprint, NOTHING_OPEN if held.resolved_start else NEVER_SEEN)
    if started < held.open.started_at:
        return Leave(alert.fingerprint, EARLIER_OCCURRENCE)
    ended = alert.ends_at or now
    return Resolve(
        held.open.alert_id, alert.fingerprint, max(min(ended, now), held.open.started_at)
    )


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")
