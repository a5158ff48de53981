"""What each kind of channel sends about an alert, in pure functions.

Everything comes in as arguments (an `AlertNotice` and the channel's own values): no
database, no settings, no network. The wire formats and their limits are the
receivers' own (Slack incoming webhooks with Block Kit, PagerDuty Events API v2,
Alertmanager's webhook version 4); every payload carries the trace id of the evaluation that
raised the alert and its audit tags, and marks a test as a test.

Bundles. When more notifications wait for one Slack, email or webhook destination
than its rate allows, the transport sends one message listing them: at most
SLACK_BUNDLE_LIMIT (20), EMAIL_BUNDLE_LIMIT (50) or WEBHOOK_BUNDLE_LIMIT (100) alerts,
saying how many more were not listed. PagerDuty is never bundled: each alert is its
own incident.

Signed webhooks, for receivers. A webhook with a secret carries two headers:

    X-Signature-Timestamp: 1767225600          (unix seconds when it was signed)
    X-Signature: v1=<hex HMAC-SHA256>

where the HMAC's key is the secret (UTF-8) and its message the timestamp, a dot, and
the body exactly as received:

    expected = "v1=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body,
                                hashlib.sha256).hexdigest()

Compare with `hmac.compare_digest`, and refuse a timestamp more than a few minutes
from your clock, so a captured request cannot be replayed later
(`verify_webhook_signature` does both). Every request also carries `X-Trace-Id`.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from django.template import Context, Engine

from controlplane.promql.values import spell, to_json

Event = Literal["trigger", "reminder", "acknowledge", "resolve", "test"]
EVENTS: tuple[Event, ...] = ("trigger", "reminder", "acknowledge", "resolve", "test")
# alerting.models.Severity's values (a test keeps the two equal); not imported, as
# that module is the ORM's.
SEVERITIES = ("critical", "warning", "info")

EVENT_TITLES: dict[str, str] = {
    "trigger": "Firing",
    "reminder": "Still firing",
    "acknowledge": "Acknowledged",
    "resolve": "Resolved",
    "test": "Test",
}
TEST_MARK = "[TEST]"
TEST_NOTE = "Test notification: no action is needed."

# Links we write into messages: only web pages, and only of a length a reader's client
# will open (a longer one is left out rather than cut into a wrong address).
LONGEST_LINK = 800


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class AuditTags:
    """Who and what caused the alert: the identifiers we put on spans and logs
    (app.request.id, enduser.id, app.organization.id), plus the acting actor."""

    request_id: str | None = None
    user_id: str | None = None
    organization_id: str | None = None
    actor: str | None = None

    @classmethod
    def from_alert(cls, audit: Mapping[str, object]) -> AuditTags:
        """From `Alert.audit` as alerting.lifecycle.audit_tags writes it."""

        def text(name: str) -> str | None:
            value = audit.get(name)
            return None if value is None else str(value)

        return cls(
            request_id=text("request_id"),
            user_id=text("user_id"),
            organization_id=text("organization"),
            actor=text("actor"),
        )

    def as_dict(self) -> dict[str, str | None]:
        return {
            "request_id": self.request_id,
            "user_id": self.user_id,
            "organization_id": self.organization_id,
            "actor": self.actor,
        }


@dataclass(frozen=True)
class AlertNotice:
    """One notification's worth of facts about one alert, as the payloads need them."""

    alert_id: int
    rule_key: str
    rule_name: str
    summary: str
    severity: str
    event: Event
    value: float | None
    opened_at: datetime
    fingerprint: str
    organization: str  # the organisation's slug
    trace_id: str = ""
    audit: AuditTags = AuditTags()
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    service: str = ""
    runbook_url: str = ""
    alert_url: str = ""
    acknowledge_url: str = ""  # the signed one-click link of this notification
    resolved_at: datetime | None = None
    is_test: bool = False
    # Slack member ids of the on-call responders the same step paged (Slack mentions).
    mentions: tuple[str, ...] = ()
    # The ledger row's id: the same on every attempt, so a receiver can drop the one
    # repeat a worker killed between the answer and its commit can cause.
    notification_id: int | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}")
        if self.event not in EVENTS:
            raise ValueError(f"event must be one of {', '.join(EVENTS)}")
        for name in ("opened_at", "resolved_at"):
            at = getattr(self, name)
            if at is not None and at.utcoffset() is None:
                raise ValueError(f"{name} must be an aware datetime")
        if self.event == "resolve" and self.resolved_at is None:
            raise ValueError("a resolve notice needs resolved_at")
        object.__setattr__(self, "labels", _frozen(self.labels))
        object.__setattr__(self, "annotations", _frozen(self.annotations))
        if self.event == "test":
            object.__setattr__(self, "is_test", True)

    @property
    def firing(self) -> bool:
        return self.event != "resolve"


# Shared pieces.


def value_text(value: float | None) -> str:
    """The value for a reader: NaN and infinities as Prometheus spells them."""
    if value is None:
        return "no value"
    spelled = spell(value)
    if spelled is not None:
        return spelled
    return repr(value).removesuffix(".0")


def value_json(value: float | None) -> float | str | None:
    """The value for JSON, which has no NaN nor infinities: those travel as strings."""
    return None if value is None else to_json(value)


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def web_link(url: str) -> str:
    """`url` when it is an http(s) address short enough to open, else "" (no link)."""
    if not url or len(url) > LONGEST_LINK or any(ch.isspace() or ord(ch) < 32 for ch in url):
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return url if parts.scheme in ("http", "https") and parts.netloc else ""


def _title(notice: AlertNotice) -> str:
    test = f"{TEST_MARK} " if notice.is_test else ""
    return f"{test}{EVENT_TITLES[notice.event]}: {notice.rule_name}"


def _units(text: str) -> int:
    # UTF-16 code units, never fewer than characters: a limit counted either way holds.
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters (UTF-16 units), ending in an ellipsis
    when cut."""
    if _units(text) <= limit:
        return text
    used = 0
    for index, ch in enumerate(text):
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > limit - 1:
            return text[:index] + "…"
    return text  # pragma: no cover: the length check above returned already


def _common(values: Sequence[Any], empty: Any) -> Any:
    """The one value all share, or `empty` when they differ."""
    return values[0] if values and all(value == values[0] for value in values) else empty


def _check_bundle(notices: Sequence[AlertNotice], limit: int, most: int) -> None:
    if not notices:
        raise ValueError("a bundle needs at least one notice")
    if not 1 <= limit <= most:
        raise ValueError(f"a bundle lists from 1 to {most} alerts")


# Slack incoming webhooks (Block Kit).

SLACK_HEADER_LIMIT = 150
SLACK_SECTION_LIMIT = 3000
SLACK_FIELD_LIMIT = 2000
SLACK_FALLBACK_LIMIT = 3000  # ours: the fallback is a notification's preview line
SLACK_BUNDLE_LIMIT = 20
# A message holds at most 50 blocks: a header, one section per alert, a context.
SLACK_MOST_BUNDLED = 45
_SLACK_EMOJI = {
    "critical": ":red_circle:",
    "warning": ":large_orange_circle:",
    "info": ":information_source:",
}
_SLACK_EVENT_EMOJI = {"acknowledge": ":eyes:", "resolve": ":white_check_mark:"}
_ENTITY_START = re.compile(r"&[a-z]*$")
# A Slack member id (U…, or W… on Enterprise Grid): anything else is never put in a
# mention, so a stored id cannot become <!channel> or a link.
_SLACK_MEMBER_ID = re.compile(r"[UW][A-Z0-9]{2,30}")


def slack_mentions(member_ids: Sequence[str]) -> str:
    """ "<@U1> <@U2>" for the well-formed member ids, in order, each once."""
    valid = (m for m in member_ids if _SLACK_MEMBER_ID.fullmatch(m))
    return " ".join(f"<@{m}>" for m in dict.fromkeys(valid))


def slack_escape(text: str) -> str:
    """Text with Slack's control characters as entities, so `<http://evil|click>` or
    `<!channel>` in a label shows as typed instead of becoming a link or a mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_clip(escaped: str, limit: int) -> str:
    """Cut escaped mrkdwn without leaving half an entity (`&am…`) behind."""
    cut = clip(escaped, limit)
    if cut == escaped:
        return cut
    return _ENTITY_START.sub("", cut[:-1]) + "…"


def _slack_link(url: str, label: str) -> str:
    # In <url|label> a |, < or > would end the URL early: percent-encoded they mean the
    # same to the server. & is written as Slack writes it in links.
    href = web_link(url)
    href = href.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
    return f"<{href}|{label}>" if href and len(href) <= LONGEST_LINK else ""


def _slack_links(notice: AlertNotice) -> str:
    links = [
        _slack_link(notice.acknowledge_url, "Acknowledge") if notice.firing else "",
        _slack_link(notice.alert_url, "Alert page"),
        _slack_link(notice.runbook_url, "Runbook"),
    ]
    return " · ".join(link for link in links if link)


def _slack_trail(notice: AlertNotice) -> list[str]:
    """The trace id and audit tags, one mrkdwn piece each (escaped)."""
    pieces = [f"Trace `{slack_escape(notice.trace_id or 'none')}`"]
    for name, value in notice.audit.as_dict().items():
        if value is not None:
            pieces.append(f"{name.replace('_', ' ')} `{slack_escape(value)}`")
    pieces.append(f"organisation `{slack_escape(notice.organization)}`")
    if notice.is_test:
        pieces.append(f"*{TEST_NOTE}*")
    return [_slack_clip(piece, SLACK_SECTION_LIMIT) for piece in pieces]


def _slack_emoji(notice: AlertNotice) -> str:
    return _SLACK_EVENT_EMOJI.get(notice.event, _SLACK_EMOJI[notice.severity])


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def slack_message(notice: AlertNotice) -> dict[str, Any]:
    """One alert as a Block Kit message with a plain `text` fallback."""
    header = clip(f"{_slack_emoji(notice)} {_title(notice)}", SLACK_HEADER_LIMIT)
    fields = [
        ("Severity", notice.severity.upper()),
        ("Value", value_text(notice.value)),
        ("Service", notice.service or "none"),
        ("Organisation", notice.organization),
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        {
            "type": "section",
            "text": _mrkdwn(
                _slack_clip(slack_escape(notice.summary or "(no summary)"), SLACK_SECTION_LIMIT)
            ),
            "fields": [
                _mrkdwn(_slack_clip(f"*{name}*\n{slack_escape(text)}", SLACK_FIELD_LIMIT))
                for name, text in fields
            ],
        },
    ]
    if notice.labels:
        labels = "\n".join(f"{name}={value}" for name, value in sorted(notice.labels.items()))
        blocks.append(
            {
                "type": "section",
                "text": _mrkdwn(
                    _slack_clip("*Labels*\n" + slack_escape(labels), SLACK_SECTION_LIMIT)
                ),
            }
        )
    links = _slack_links(notice)
    if links:
        blocks.append({"type": "section", "text": _mrkdwn(links)})
    mentions = slack_mentions(notice.mentions)
    if mentions:
        blocks.append({"type": "section", "text": _mrkdwn(f"*On call:* {mentions}")})
    blocks.append(
        {"type": "context", "elements": [_mrkdwn(piece) for piece in _slack_trail(notice)]}
    )
    fallback = f"[{notice.severity.upper()}] {_title(notice)}: {notice.summary}"
    text = _slack_clip(slack_escape(fallback), SLACK_FALLBACK_LIMIT - len(mentions) - 1)
    # In the fallback too: the push notification of a mention is made from it.
    return {"text": f"{mentions} {text}" if mentions else text, "blocks": blocks}


def slack_bundle(
    notices: Sequence[AlertNotice], limit: int = SLACK_BUNDLE_LIMIT, more_url: str = ""
) -> dict[str, Any]:
    """Several alerts in one message: the first `limit`, then how many more there are
    (with a link to `more_url`, e.g. the alert list, when given)."""
    _check_bundle(notices, limit, SLACK_MOST_BUNDLED)
    listed, hidden = notices[:limit], len(notices) - min(limit, len(notices))
    test = f"{TEST_MARK} " if all(n.is_test for n in notices) else ""
    header = f":rotating_light: {test}{len(notices)} alert notifications"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": clip(header, SLACK_HEADER_LIMIT), "emoji": True},
        }
    ]
    for notice in listed:
        blocks.append({"type": "section", "text": _mrkdwn(_slack_bundled(notice))})
    if hidden:
        more = f"…and {hidden} more not listed here."
        link = _slack_link(more_url, "See them all")
        blocks.append({"type": "context", "elements": [_mrkdwn(f"{more} {link}".strip())]})
    mentions = slack_mentions([m for n in notices for m in n.mentions])
    if mentions:
        blocks.append({"type": "section", "text": _mrkdwn(f"*On call:* {mentions}")})
    names = ", ".join(n.rule_name for n in listed) + (f" and {hidden} more" if hidden else "")
    fallback = f"{test}{len(notices)} alert notifications: {names}"
    text = _slack_clip(slack_escape(fallback), SLACK_FALLBACK_LIMIT - len(mentions) - 1)
    return {"text": f"{mentions} {text}" if mentions else text, "blocks": blocks}


def _slack_bundled(notice: AlertNotice) -> str:
    """One alert of a bundle as one section: what is fixed first, the summary in the
    room that is left."""
    title = _slack_clip(
        slack_escape(f"[{notice.severity.upper()}] {_title(notice)}"), SLACK_HEADER_LIMIT
    )
    facts = " · ".join(
        _slack_clip(slack_escape(text), 200)
        for text in (f"value {value_text(notice.value)}", f"service {notice.service or 'none'}")
    )
    tail = "\n".join(
        part for part in (facts, _slack_links(notice), " · ".join(_slack_trail(notice))) if part
    )
    head = f"{_slack_emoji(notice)} *{title}*\n"
    room = SLACK_SECTION_LIMIT - _units(head) - _units(tail) - 1
    if room < 20:
        # Only absurdly long links or audit tags get here: stay valid, drop the tail.
        return _slack_clip(head + slack_escape(notice.summary), SLACK_SECTION_LIMIT)
    return f"{head}{_slack_clip(slack_escape(notice.summary), room)}\n{tail}"


# PagerDuty Events API v2.

PAGERDUTY_SUMMARY_LIMIT = 1024
DEDUP_KEY_LIMIT = 255
# "under 512 KB": taken as 512,000 bytes, the smaller reading, measured as the
# event's JSON with non-ASCII escaped (the largest encoding a client would send).
PAGERDUTY_EVENT_LIMIT = 512_000
# Strings of ours in an event that come from users (labels aside): cut to this much.
_PAGERDUTY_TEXT_LIMIT = 1024
PAGERDUTY_CLIENT = "Observability control plane"
# Our severities onto PagerDuty's of the same names; PagerDuty's `error` has no
# counterpart here and is never sent.
PAGERDUTY_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}
# Reminders and tests trigger too: a trigger with an open incident's dedup_key is
# merged into it, so a reminder opens nothing new.
PAGERDUTY_ACTION = {
    "trigger": "trigger",
    "reminder": "trigger",
    "test": "trigger",
    "acknowledge": "acknowledge",
    "resolve": "resolve",
}


def dedup_key(notice: AlertNotice) -> str:
    """The alert's one key, the same for its trigger, acknowledge and resolve.

    Built from what never changes over an alert's life (its id and fingerprint, not the
    organisation's slug, which may be renamed mid-incident); a test's key is apart, so a
    test can never acknowledge or resolve a real incident.
    """
    prefix = "controlplane-test" if notice.is_test else "controlplane"
    key = f"{prefix}/alert/{notice.alert_id}/{notice.fingerprint}"
    if len(key) > DEDUP_KEY_LIMIT:
        digest = hashlib.sha256(notice.fingerprint.encode()).hexdigest()
        key = f"{prefix}/alert/{notice.alert_id}/sha256:{digest}"
    return key


def pagerduty_event(notice: AlertNotice, routing_key: str) -> dict[str, Any]:
    """The Events v2 event for this notice.

    A trigger carries the payload; acknowledge and resolve carry only the dedup key,
    as PagerDuty wants, and must go with the routing key that triggered (PagerDuty drops
    follow-ups sent with another). `component` is the service (else the rule key),
    `group` the organisation, `class` the rule key, `source` the series' instance label
    (else the service, else the organisation).

    The event stays under PAGERDUTY_EVENT_LIMIT: labels and annotations are what can
    make it big, so their values are first cut to 1024 characters each, and if it is
    still too big they are left out altogether (`custom_details.truncated` says so);
    everything else is bounded by construction.
    """
    action = PAGERDUTY_ACTION[notice.event]
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key(notice),
    }
    if action != "trigger":
        return event
    prefix = f"{TEST_MARK} " if notice.is_test else ""
    summary = (
        f"{prefix}{notice.rule_name}: {notice.summary}"
        if notice.summary
        else prefix + notice.rule_name
    )
    details: dict[str, Any] = {
        "labels": dict(notice.labels),
        "annotations": dict(notice.annotations),
        "value": value_json(notice.value),
        "trace_id": _pd_text(notice.trace_id),
        "audit": {name: _pd_text(v) if v else v for name, v in notice.audit.as_dict().items()},
        "is_test": notice.is_test,
        "event": notice.event,
        "alert_id": notice.alert_id,
        "fingerprint": _pd_text(notice.fingerprint),
        "organization": _pd_text(notice.organization),
    }
    if web_link(notice.acknowledge_url):
        details["acknowledge_url"] = notice.acknowledge_url
    event["payload"] = {
        "summary": clip(summary, PAGERDUTY_SUMMARY_LIMIT),
        "source": _pd_text(_pagerduty_source(notice)),
        "severity": PAGERDUTY_SEVERITY[notice.severity],
        "timestamp": rfc3339(notice.opened_at),
        "component": _pd_text(notice.service or notice.rule_key),
        "group": _pd_text(notice.organization),
        "class": _pd_text(notice.rule_key),
        "custom_details": details,
    }
    # Acknowledging in PagerDuty does not reach us: the link acknowledges here too.
    acknowledge = notice.acknowledge_url if notice.firing else ""
    links = [
        {"href": href, "text": text}
        for href, text in (
            (notice.alert_url, "Alert page"),
            (notice.runbook_url, "Runbook"),
            (acknowledge, "Acknowledge in the control plane"),
        )
        if web_link(href)
    ]
    if links:
        event["links"] = links
    event["client"] = PAGERDUTY_CLIENT
    if web_link(notice.alert_url):
        event["client_url"] = notice.alert_url
    if _size(event) > PAGERDUTY_EVENT_LIMIT:
        details["labels"] = _cut_values(notice.labels)
        details["annotations"] = _cut_values(notice.annotations)
        details["truncated"] = True
    if _size(event) > PAGERDUTY_EVENT_LIMIT:
        details["labels"], details["annotations"] = {}, {}
    return event


def _pagerduty_source(notice: AlertNotice) -> str:
    """PagerDuty wants the affected system, "preferably a hostname": the instance label
    when the series has one, else the service, else the organisation."""
    return notice.labels.get("instance") or notice.service or notice.organization or "controlplane"


def _pd_text(text: str) -> str:
    return clip(text, _PAGERDUTY_TEXT_LIMIT)


def _cut_values(mapping: Mapping[str, str]) -> dict[str, str]:
    return {
        clip(k, _PAGERDUTY_TEXT_LIMIT): clip(v, _PAGERDUTY_TEXT_LIMIT) for k, v in mapping.items()
    }


def _size(payload: Any) -> int:
    return len(json.dumps(payload, allow_nan=False).encode())


# Email.

EMAIL_SUBJECT_LIMIT = 200
EMAIL_BUNDLE_LIMIT = 50
EMAIL_MOST_BUNDLED = 200
_HEADER_VALUE_LIMIT = 200
TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"


@dataclass(frozen=True)
class EmailContent:
    subject: str
    text: str
    html: str
    headers: Mapping[str, str] = field(hash=False)


@functools.cache
def _engine() -> Engine:
    # An engine of our own rather than settings.TEMPLATES: rendering reads no setting,
    # and autoescaping is on whatever the project's configuration becomes.
    return Engine(
        dirs=[str(TEMPLATES_DIR)],
        loaders=[
            ("django.template.loaders.cached.Loader", ["django.template.loaders.filesystem.Loader"])
        ],
        autoescape=True,
    )


def _render(name: str, context: Mapping[str, Any]) -> str:
    rendered = _engine().get_template(name).render(Context(dict(context), autoescape=True))
    # Template tags leave blank lines behind; a text body reads better without runs.
    return re.sub(r"\n{3,}", "\n\n", rendered).strip() + "\n"


def _one_line(text: str, limit: int) -> str:
    """Text fit for a mail header: control characters, line breaks among them (which
    would start a header of their own), become spaces; runs of spaces one."""
    printable = "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in text)
    return clip(" ".join(printable.split()), limit)


def _email_view(notice: AlertNotice) -> dict[str, Any]:
    """The notice as the templates read it: strings only, links only when safe to open."""
    return {
        "title": _title(notice),
        "severity": notice.severity.upper(),
        "event": EVENT_TITLES[notice.event],
        "rule_name": notice.rule_name,
        "rule_key": notice.rule_key,
        "summary": notice.summary,
        "value": value_text(notice.value),
        "service": notice.service,
        "organization": notice.organization,
        "labels": sorted(notice.labels.items()),
        "annotations": sorted(notice.annotations.items()),
        "runbook_url": web_link(notice.runbook_url),
        "alert_url": web_link(notice.alert_url),
        "acknowledge_url": web_link(notice.acknowledge_url) if notice.firing else "",
        "trace_id": notice.trace_id,
        "audit": [
            (k.replace("_", " "), v) for k, v in notice.audit.as_dict().items() if v is not None
        ],
        "opened_at": rfc3339(notice.opened_at),
        "resolved_at": rfc3339(notice.resolved_at) if notice.resolved_at else "",
        "fingerprint": notice.fingerprint,
        "is_test": notice.is_test,
        "test_note": TEST_NOTE,
    }


def _email_headers(notices: Sequence[AlertNotice]) -> dict[str, str]:
    traces: list[str] = []
    for trace in dict.fromkeys(_one_line(n.trace_id, _HEADER_VALUE_LIMIT) for n in notices):
        # Whole ids only: a cut one would name another trace, or none.
        if trace and len(", ".join([*traces, trace])) <= _HEADER_VALUE_LIMIT:
            traces.append(trace)
    headers = {
        # RFC 3834: an automatic message, so vacation responders stay quiet.
        "Auto-Submitted": "auto-generated",
        "X-Trace-Id": ", ".join(traces),
        "X-Alert-Organization": _one_line(notices[0].organization, _HEADER_VALUE_LIMIT),
    }
    if len(notices) == 1:
        [notice] = notices
        headers["X-Alert-Id"] = str(notice.alert_id)
        headers["X-Alert-Event"] = notice.event
        headers["X-Alert-Fingerprint"] = _one_line(notice.fingerprint, _HEADER_VALUE_LIMIT)
        for name, value in notice.audit.as_dict().items():
            if value is not None:
                header = "X-Audit-" + "-".join(part.capitalize() for part in name.split("_"))
                headers[header] = _one_line(value, _HEADER_VALUE_LIMIT)
    else:
        headers["X-Alert-Count"] = str(len(notices))
    if any(n.is_test for n in notices):
        headers["X-Test-Notification"] = "true"
    return headers


def email_message(notice: AlertNotice) -> EmailContent:
    """Subject, text and HTML bodies (templates/paging/email/) and headers of one alert.

    The subject carries the severity and the rule; the headers `X-Trace-Id`, the
    alert's id, event and fingerprint, and its audit tags (`X-Audit-Request-Id`,
    `X-Audit-User-Id`, `X-Audit-Organization-Id`, `X-Audit-Actor`).
    """
    view = _email_view(notice)
    subject = f"[{view['severity']}] {view['title']}"
    if notice.summary:
        subject += f" — {notice.summary}"
    context = {"alert": view}
    return EmailContent(
        subject=_one_line(subject, EMAIL_SUBJECT_LIMIT),
        text=_render("paging/email/alert.txt", context),
        html=_render("paging/email/alert.html", context),
        headers=_email_headers([notice]),
    )


def email_bundle(notices: Sequence[AlertNotice], limit: int = EMAIL_BUNDLE_LIMIT) -> EmailContent:
    """Several alerts in one email: the first `limit`, then how many more there are.
    `X-Trace-Id` lists the distinct trace ids, comma-separated, as many whole ones as fit
    in 200 characters (five of 32 digits); the body has every listed alert's."""
    _check_bundle(notices, limit, EMAIL_MOST_BUNDLED)
    listed, hidden = notices[:limit], len(notices) - min(limit, len(notices))
    test = f"{TEST_MARK} " if all(n.is_test for n in notices) else ""
    worst = min(notices, key=lambda n: SEVERITIES.index(n.severity)).severity.upper()
    names = ", ".join(dict.fromkeys(n.rule_name for n in listed))
    subject = f"[{worst}] {test}{len(notices)} alert notifications: {names}"
    context = {
        "alerts": [_email_view(n) for n in listed],
        "count": len(notices),
        "hidden": hidden,
        "all_tests": bool(test),
        "test_note": TEST_NOTE,
    }
    return EmailContent(
        subject=_one_line(subject, EMAIL_SUBJECT_LIMIT),
        text=_render("paging/email/bundle.txt", context),
        html=_render("paging/email/bundle.html", context),
        headers=_email_headers(list(notices)),
    )


# Webhooks: Alertmanager's webhook payload (version 4), and then some.

WEBHOOK_BUNDLE_LIMIT = 100
WEBHOOK_MOST_BUNDLED = 1000
WEBHOOK_VERSION = "4"
NOT_ENDED = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt while an alert fires
SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Signature-Timestamp"
TRACE_HEADER = "X-Trace-Id"
SIGNATURE_VERSION = "v1"
# How far a signed timestamp may be from the receiver's clock (either way).
SIGNATURE_TOLERANCE = 300


def webhook_body(
    notices: Sequence[AlertNotice],
    *,
    receiver: str = "",
    external_url: str = "",
    limit: int = WEBHOOK_BUNDLE_LIMIT,
) -> dict[str, Any]:
    """An Alertmanager webhook (version 4) any of its receivers can read.

    Each alert carries Alertmanager's keys and ours (`trace_id`, `audit`, `event`,
    `alert_url`, `runbook_url`, `acknowledge_url`, `is_test`, ...); `alertname`,
    `severity` and a `summary` annotation are added when the alert's own lack them, as
    Alertmanager receivers expect them. The top-level `trace_id`, `organization`,
    `runbook_url`, `alert_url` and `audit` are the value every listed alert shares, or
    "" (null for `audit`) when they differ; `is_test` is true only when all are tests.
    Alerts past `limit` are counted in `truncatedAlerts`, as Alertmanager does.
    """
    _check_bundle(notices, limit, WEBHOOK_MOST_BUNDLED)
    listed = notices[:limit]
    alerts = [_webhook_alert(notice) for notice in listed]
    return {
        "version": WEBHOOK_VERSION,
        "groupKey": f"controlplane/{notices[0].organization}/{receiver}",
        "truncatedAlerts": len(notices) - len(listed),
        "status": "firing" if any(n.firing for n in notices) else "resolved",
        "receiver": receiver,
        "groupLabels": {},
        "commonLabels": _shared([a["labels"] for a in alerts]),
        "commonAnnotations": _shared([a["annotations"] for a in alerts]),
        "externalURL": external_url,
        "alerts": alerts,
        "trace_id": _common([n.trace_id for n in listed], ""),
        "organization": _common([n.organization for n in listed], ""),
        "runbook_url": _common([n.runbook_url for n in listed], ""),
        "alert_url": _common([n.alert_url for n in listed], ""),
        "audit": _common([n.audit.as_dict() for n in listed], None),
        "is_test": all(n.is_test for n in notices),
    }


def _webhook_alert(notice: AlertNotice) -> dict[str, Any]:
    labels = {"alertname": notice.rule_key, "severity": notice.severity, **notice.labels}
    annotations = dict(notice.annotations)
    annotations.setdefault("summary", notice.summary)
    if notice.runbook_url:
        annotations.setdefault("runbook_url", notice.runbook_url)
    return {
        "status": "firing" if notice.firing else "resolved",
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(notice.opened_at),
        "endsAt": rfc3339(notice.resolved_at)
        if notice.resolved_at and not notice.firing
        else NOT_ENDED,
        "generatorURL": notice.alert_url,
        "fingerprint": notice.fingerprint,
        "alert_id": notice.alert_id,
        "notification_id": notice.notification_id,
        "event": notice.event,
        "severity": notice.severity,
        "summary": notice.summary,
        "value": value_json(notice.value),
        "service": notice.service,
        "organization": notice.organization,
        "trace_id": notice.trace_id,
        "audit": notice.audit.as_dict(),
        "runbook_url": notice.runbook_url,
        "alert_url": notice.alert_url,
        "acknowledge_url": notice.acknowledge_url if notice.firing else "",
        "is_test": notice.is_test,
    }


def _shared(mappings: list[dict[str, str]]) -> dict[str, str]:
    """The pairs every mapping has, as Alertmanager's commonLabels."""
    first, *rest = mappings
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}


def encode_body(payload: Any) -> bytes:
    """The bytes to send, and to sign: compact UTF-8 JSON; NaN never gets through."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """`v1=` and the hex HMAC-SHA256, keyed by the secret, of "<timestamp>." + body."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={digest.hexdigest()}"


def verify_webhook_signature(
    secret: str,
    timestamp: str,
    signature: str,
    body: bytes,
    *,
    now: float,
    tolerance: int = SIGNATURE_TOLERANCE,
) -> bool:
    """What a receiver does with the two signature headers (module doc)."""
    if not timestamp.isascii() or not timestamp.isdigit():
        return False
    if abs(now - int(timestamp)) > tolerance:
        return False
    expected = webhook_signature(secret, int(timestamp), body)
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


def webhook_headers(
    body: bytes, *, trace_id: str, secret: str = "", timestamp: int = 0
) -> dict[str, str]:
    """The headers of ours a webhook request carries: JSON, the trace id, and the
    signature when the channel has a secret (signed at `timestamp`, unix seconds)."""
    headers = {"Content-Type": "application/json", TRACE_HEADER: trace_id}
    if secret:
        headers[TIMESTAMP_HEADER] = str(timestamp)
        headers[SIGNATURE_HEADER] = webhook_signature(secret, timestamp, body)
    return headers
