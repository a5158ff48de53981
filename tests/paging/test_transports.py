"""Transports against real receivers on loopback (tests/receivers.py): what each answer
means, that what arrives is valid by the receiver's own checks, that no secret ever
leaves in a reason; and the receivers' checks themselves, which must refuse a bad
payload for any of this to mean something."""

from __future__ import annotations

import errno
import json
import smtplib
import socket
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from typing import Any

import pytest
import requests
from django.core.mail import BadHeaderError

from controlplane.paging.channels import (
    ChannelConfig,
    EmailConfig,
    PagerDutyConfig,
    SlackConfig,
    WebhookConfig,
)
from controlplane.paging.payloads import (
    AlertNotice,
    AuditTags,
    dedup_key,
    email_bundle,
    email_message,
    encode_body,
    pagerduty_event,
    slack_bundle,
    slack_message,
    webhook_body,
    webhook_headers,
)
from controlplane.paging.transports import (
    ANSWER_LIMIT,
    LONGEST_RETRY_AFTER,
    Delivered,
    EmailTransport,
    GiveUp,
    Outcome,
    Retry,
    WebhookTransport,
    deliver,
    retry_after,
    smtp_outcome,
    status_word,
    transport_for,
)
from tests.receivers import HttpReceiver, WebhookReceiver
from tests.services import BlackHole, free_port
from tests.waiting import REQUEST_TIMEOUT

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
# The secrets a reason must never hold.
SLACK_SECRET_PART = "XkSlackPathSecret9Q"
SLACK_PATH = f"/services/T0000/B0000/{SLACK_SECRET_PART}"
ROUTING_KEY = "R0uTiNgKeY0123456789abcdefABCDEF"
WEBHOOK_SECRET = "whsec-3f9a1c0d77e24b6b9e5a"
HEADER_SECRET = "Bearer hdr-7d1e5c9b0a4f"
SECRETS = (SLACK_SECRET_PART, ROUTING_KEY, WEBHOOK_SECRET, HEADER_SECRET)
# Seconds, for the tests that wait for a timeout: short, so each takes about that long.
SHORT = 0.5
NORMAL_STATUS = {"slack": 200, "pagerduty": 202, "webhook": 200}


def notice(**changes: Any) -> AlertNotice:
    base = AlertNotice(
        alert_id=17,
        rule_key="api.5xx",
        rule_name="API 5xx ratio",
        summary="5xx ratio is 7% on checkout",
        severity="critical",
        event="trigger",
        value=0.07,
        opened_at=T0,
        fingerprint="9f86d081884c7d65",
        organization="acme",
        trace_id=TRACE,
        audit=AuditTags(request_id="req-7f3a", user_id="42", organization_id="3", actor="beat"),
        labels={"instance": "api-1:8000", "job": "api"},
        annotations={"description": "Too many errors"},
        service="checkout",
        runbook_url="https://runbooks.example.com/api-5xx",
        alert_url="https://cp.example.com/alerts/17/",
        acknowledge_url="https://cp.example.com/alerts/17/ack/signed-token/",
    )
    return replace(base, **changes)


def resolved(**changes: Any) -> AlertNotice:
    return notice(event="resolve", resolved_at=T0 + timedelta(minutes=5), **changes)


def assert_no_secret(outcome: Outcome) -> None:
    shown = repr(outcome)
    for secret in SECRETS:
        assert secret not in shown


def config_for(kind: str, base_url: str) -> ChannelConfig:
    if kind == "slack":
        return SlackConfig(url=base_url + SLACK_PATH)
    if kind == "pagerduty":
        return PagerDutyConfig(routing_key=ROUTING_KEY, url=base_url + "/v2/enqueue")
    return WebhookConfig(
        url=base_url + "/hooks/alerts",
        secret=WEBHOOK_SECRET,
        headers=(("Authorization", HEADER_SECRET), ("X-Team", "payments")),
    )


def message_for(kind: str) -> dict[str, Any]:
    if kind == "slack":
        return slack_message(notice())
    if kind == "pagerduty":
        return pagerduty_event(notice(), ROUTING_KEY)
    return webhook_body([notice()], receiver="ops")


@dataclass
class Case:
    """One HTTP kind: its receiver, a channel aimed at it and a message for it."""

    kind: str
    receiver: HttpReceiver
    config: ChannelConfig
    message: dict[str, Any]

    def deliver(self, timeout: float | None = None, config: ChannelConfig | None = None):
        transport = transport_for(self.kind, timeout=timeout)
        outcome = transport.deliver(config or self.config, self.message)
        assert_no_secret(outcome)
        return outcome

    def aimed_at(self, base_url: str) -> ChannelConfig:
        return config_for(self.kind, base_url)


@pytest.fixture(params=["slack", "pagerduty", "webhook"])
def case(request) -> Case:
    kind = request.param
    receiver = request.getfixturevalue(f"{kind}_receiver")
    if kind == "webhook":
        receiver.secret = WEBHOOK_SECRET
    return Case(kind, receiver, config_for(kind, receiver.url), message_for(kind))


# Delivered, and valid where it arrived.


def test_a_message_is_delivered_valid_and_byte_for_byte(case):
    outcome = case.deliver()

    assert outcome == Delivered(NORMAL_STATUS[case.kind])
    [received] = case.receiver.requests
    assert received.valid, received.problems
    assert received.method == "POST"
    assert received.raw == encode_body(case.message)


def test_the_top_level_deliver_picks_the_transport_by_kind(case):
    assert deliver(case.config, case.message) == Delivered(NORMAL_STATUS[case.kind])
    assert case.receiver.requests[-1].valid


def test_slack_gets_its_path_and_every_message_shape(slack_receiver):
    config = config_for("slack", slack_receiver.url)
    messages = [
        slack_message(notice()),
        slack_message(resolved()),
        slack_message(notice(event="acknowledge")),
        slack_message(notice(event="test")),
        # Long texts are the payload's to clip: the receiver would refuse them unclipped.
        slack_message(notice(summary="s" * 5000, rule_name="r" * 400, labels={"a": "b" * 4000})),
        slack_bundle([notice(alert_id=n, fingerprint=f"fp{n}") for n in range(30)]),
    ]

    outcomes = [transport_for("slack").deliver(config, message) for message in messages]

    assert outcomes == [Delivered(200)] * len(messages)
    assert [r.path for r in slack_receiver.requests] == [SLACK_PATH] * len(messages)
    assert [r.problems for r in slack_receiver.requests] == [[]] * len(messages)


def test_pagerduty_gets_trigger_acknowledge_and_resolve_with_one_dedup_key(pagerduty_receiver):
    config = config_for("pagerduty", pagerduty_receiver.url)
    events = [
        pagerduty_event(n, ROUTING_KEY) for n in (notice(), notice(event="acknowledge"), resolved())
    ]

    outcomes = [transport_for("pagerduty").deliver(config, event) for event in events]

    assert outcomes == [Delivered(202)] * 3
    received = pagerduty_receiver.requests
    assert [r.problems for r in received] == [[], [], []]
    assert [r.body["event_action"] for r in received] == ["trigger", "acknowledge", "resolve"]
    assert {r.body["dedup_key"] for r in received} == {dedup_key(notice())}
    assert {r.body["routing_key"] for r in received} == {ROUTING_KEY}
    assert {r.path for r in received} == {"/v2/enqueue"}


def test_an_event_built_for_another_routing_key_is_a_bug(pagerduty_receiver):
    config = config_for("pagerduty", pagerduty_receiver.url)
    event = pagerduty_event(notice(), "X" * 32)

    with pytest.raises(ValueError, match="another routing key") as raised:
        transport_for("pagerduty").deliver(config, event)

    assert ROUTING_KEY not in str(raised.value)
    assert pagerduty_receiver.requests == []


def test_a_webhook_is_signed_over_the_bytes_sent_with_its_headers(webhook_receiver):
    webhook_receiver.secret = WEBHOOK_SECRET
    config = config_for("webhook", webhook_receiver.url)
    body = webhook_body([notice(), resolved(alert_id=18, fingerprint="fp18")], receiver="ops")

    outcome = transport_for("webhook").deliver(config, body)

    assert outcome == Delivered(200)
    [received] = webhook_receiver.requests
    assert received.valid, received.problems  # the receiver's own HMAC agrees
    assert received.raw == encode_body(body)
    assert received.headers["X-Signature"].startswith("v1=")
    assert received.headers["Authorization"] == HEADER_SECRET
    assert received.headers["X-Team"] == "payments"
    assert received.headers["X-Trace-Id"] == TRACE
    assert len(received.body["alerts"]) == 2


def test_a_webhook_without_a_secret_is_unsigned(webhook_receiver):
    config = WebhookConfig(url=webhook_receiver.url + "/hook")

    assert transport_for("webhook").deliver(config, message_for("webhook")) == Delivered(200)
    [received] = webhook_receiver.requests
    assert received.valid, received.problems
    assert "X-Signature" not in received.headers
    assert "X-Signature-Timestamp" not in received.headers


def test_a_receiver_with_another_secret_refuses_and_the_transport_gives_up(webhook_receiver):
    webhook_receiver.secret = "another-secret-of-the-receiver"
    config = config_for("webhook", webhook_receiver.url)

    outcome = transport_for("webhook").deliver(config, message_for("webhook"))

    assert isinstance(outcome, GiveUp)
    assert outcome.status == 400
    assert webhook_receiver.requests[-1].problems == ["the signature does not match the body"]
    assert_no_secret(outcome)


def test_each_attempt_is_signed_at_its_own_time(webhook_receiver):
    # A clock an hour behind signs a timestamp the receiver finds stale: the signature's
    # time is the attempt's, not the message's.
    webhook_receiver.secret = WEBHOOK_SECRET
    config = config_for("webhook", webhook_receiver.url)
    late = WebhookTransport(clock=lambda: time.time() - 3600)

    assert isinstance(late.deliver(config, message_for("webhook")), GiveUp)
    assert webhook_receiver.requests[-1].problems == ["the signature is stale"]
    assert WebhookTransport().deliver(config, message_for("webhook")) == Delivered(200)


def test_the_channels_headers_never_replace_ours(webhook_receiver):
    # Saved through the API these names are refused; a row written otherwise may have them.
    config = WebhookConfig(
        url=webhook_receiver.url + "/hook",
        headers=(("content-type", "text/plain"), ("x-trace-id", "forged"), ("X-Team", "a")),
    )

    assert transport_for("webhook").deliver(config, message_for("webhook")) == Delivered(200)
    received = webhook_receiver.requests[-1]
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["X-Trace-Id"] == TRACE
    assert received.headers["X-Team"] == "a"


def test_a_header_value_that_cannot_go_on_the_wire_gives_up_unquoted(webhook_receiver):
    config = WebhookConfig(
        url=webhook_receiver.url + "/hook", headers=(("X-Key", f"{HEADER_SECRET}\r\nX-Evil: 1"),)
    )

    outcome = transport_for("webhook").deliver(config, message_for("webhook"))

    assert outcome == GiveUp("the webhook cannot be sent as configured (InvalidHeader)")
    assert webhook_receiver.requests == []


# What each answer means.

ANSWERS = [
    # kind, status, body, headers, outcome, after_seconds
    ("slack", 500, b"rollup_error", {}, Retry, None),
    ("slack", 502, b"<html>bad gateway</html>", {}, Retry, None),
    ("slack", 503, b"", {"Retry-After": "7"}, Retry, 7.0),
    ("slack", 429, b"", {"Retry-After": "30"}, Retry, 30.0),
    ("slack", 400, b"invalid_payload", {}, GiveUp, None),
    ("slack", 403, b"action_prohibited", {}, GiveUp, None),
    ("slack", 403, b"invalid_token", {}, GiveUp, None),
    ("slack", 404, b"channel_not_found", {}, GiveUp, None),
    ("slack", 404, b"no_service", {}, GiveUp, None),
    ("slack", 410, b"channel_is_archived", {}, GiveUp, None),
    ("slack", 201, b"", {}, Delivered, None),
    ("pagerduty", 400, b'{"status": "invalid event"}', {}, GiveUp, None),
    ("pagerduty", 404, b"", {}, GiveUp, None),
    ("pagerduty", 429, b"", {}, Retry, None),
    ("pagerduty", 429, b"", {"Retry-After": "60"}, Retry, 60.0),
    ("pagerduty", 500, b"", {}, Retry, None),
    ("pagerduty", 503, b"", {"Retry-After": "5"}, Retry, 5.0),
    ("pagerduty", 200, b"not even json", {}, Delivered, None),
    ("webhook", 204, b"", {}, Delivered, None),
    ("webhook", 202, b"queued", {}, Delivered, None),
    ("webhook", 408, b"", {}, Retry, None),
    ("webhook", 429, b"", {"Retry-After": "120"}, Retry, 120.0),
    ("webhook", 401, b"", {}, GiveUp, None),
    ("webhook", 404, b"", {}, GiveUp, None),
    ("webhook", 410, b"", {}, GiveUp, None),
    ("webhook", 422, b"", {}, GiveUp, None),
    ("webhook", 500, b"", {}, Retry, None),
    ("webhook", 503, b"", {"Retry-After": "99999999"}, Retry, LONGEST_RETRY_AFTER),
    ("webhook", 304, b"", {}, GiveUp, None),
]


@pytest.mark.parametrize(("kind", "status", "body", "headers", "expected", "after"), ANSWERS)
def test_each_answer_then_back_to_normal(request, kind, status, body, headers, expected, after):
    receiver = request.getfixturevalue(f"{kind}_receiver")
    config = config_for(kind, receiver.url)
    if kind == "webhook":
        receiver.secret = WEBHOOK_SECRET
    receiver.answer_next(1, status, body, headers)
    transport = transport_for(kind)

    outcome = transport.deliver(config, message_for(kind))
    again = transport.deliver(config, message_for(kind))

    assert type(outcome) is expected
    assert outcome.status == status
    if expected is Retry:
        assert outcome.after_seconds == after
    if expected is not Delivered:
        assert f"HTTP {status}" in outcome.reason
    assert_no_secret(outcome)
    assert again == Delivered(NORMAL_STATUS[kind])
    assert [r.problems for r in receiver.requests] == [[], []]
    assert [r.answered for r in receiver.requests] == [status, NORMAL_STATUS[kind]]


@pytest.mark.parametrize(
    ("status", "word"),
    [
        (400, "invalid_payload"),
        (403, "action_prohibited"),
        (404, "channel_not_found"),
        (410, "channel_is_archived"),
        (500, "rollup_error"),
    ],
)
def test_slack_reasons_quote_slacks_word(slack_receiver, status, word):
    slack_receiver.answer_next(1, status, word.encode())

    outcome = transport_for("slack").deliver(
        config_for("slack", slack_receiver.url), message_for("slack")
    )

    assert outcome.reason.startswith(f"Slack answered HTTP {status} {word}: ")


@pytest.mark.parametrize("status", [400, 404, 500])
def test_what_a_receiver_says_is_not_quoted(case, status):
    # An echo of the request, a page of HTML: none of it reaches a reason.
    echo = " ".join([*SECRETS, SLACK_PATH, "channel_not_found"]).encode()
    case.receiver.answer_next(1, status, echo)

    outcome = case.deliver()

    assert type(outcome) is (Retry if status == 500 else GiveUp)
    assert "channel_not_found" not in outcome.reason


def test_retry_after_as_an_http_date(case):
    case.receiver.answer_next(1, 429, headers={"Retry-After": formatdate(time.time() + 600)})

    outcome = case.deliver()

    assert isinstance(outcome, Retry)
    # An HTTP-date counts whole seconds, and the clock moved on since it was written.
    assert 500 < outcome.after_seconds <= 600


@pytest.mark.parametrize(
    ("header", "after"),
    [
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("", None),
        ("Mon, 01 Jan 2001 00:00:00 GMT", 0.0),
        ("86400", LONGEST_RETRY_AFTER),
    ],
)
def test_an_unreadable_or_unbounded_retry_after(slack_receiver, header, after):
    slack_receiver.answer_next(1, 429, headers={"Retry-After": header})

    outcome = transport_for("slack").deliver(
        config_for("slack", slack_receiver.url), message_for("slack")
    )

    assert isinstance(outcome, Retry)
    assert outcome.after_seconds == after


# When no answer comes, or one that is not an answer.


def test_a_receiver_that_hangs_is_retried_within_the_timeout(case):
    case.receiver.hang_next(1, seconds=60)

    outcome = case.deliver(timeout=SHORT)

    assert outcome == Retry(f"{_destination(case.kind)} did not answer within 0.5 s")
    [received] = case.receiver.until_received(1)
    assert received.valid, received.problems


def test_garbage_instead_of_http_is_retried(case):
    case.receiver.garbage_next(1)

    outcome = case.deliver()

    assert outcome == Retry(f"{_destination(case.kind)} is unreachable: the answer is not HTTP")


def test_a_closed_port_is_retried(case):
    outcome = case.deliver(config=case.aimed_at(f"http://127.0.0.1:{free_port()}"))

    assert outcome == Retry(f"{_destination(case.kind)} is unreachable: Connection refused")


def test_a_private_address_not_allowed_gives_up_naming_the_setting(case, settings):
    settings.ALLOWED_PRIVATE_NETWORKS = []

    outcome = case.deliver()

    assert outcome == GiveUp(
        "127.0.0.1 is a loopback address; set ALLOWED_PRIVATE_NETWORKS to allow it"
    )
    assert case.receiver.requests == []


def test_a_redirect_gives_up_and_is_not_followed(case):
    elsewhere = WebhookReceiver()
    try:
        case.receiver.answer_next(1, 307, headers={"Location": elsewhere.url + "/stolen"})

        outcome = case.deliver()
    finally:
        elsewhere.close()

    assert isinstance(outcome, GiveUp)
    assert outcome.status == 307
    assert "redirects are not followed" in outcome.reason
    assert len(case.receiver.requests) == 1
    assert elsewhere.requests == []


def test_an_answer_too_large_for_a_receiver_gives_up(case):
    case.receiver.answer_next(1, 200, b"x" * (ANSWER_LIMIT + 1))

    outcome = case.deliver()

    assert isinstance(outcome, GiveUp)
    assert "more than 64 KiB" in outcome.reason
    assert len(case.receiver.requests) == 1


def test_a_url_that_cannot_go_on_the_wire_gives_up(case):
    outcome = case.deliver(config=case.aimed_at("http://" + "a" * 64 + ".example"))

    assert isinstance(outcome, GiveUp)
    assert "cannot be sent as configured" in outcome.reason


def test_a_message_json_cannot_spell_gives_up_unsent(case):
    message = {**case.message, "routing_key": ROUTING_KEY, "nan": float("nan")}

    outcome = transport_for(case.kind).deliver(case.config, message)

    assert outcome == GiveUp("the message cannot be encoded as JSON (ValueError)")
    assert case.receiver.requests == []


def test_a_message_for_another_kind_is_a_bug(case):
    with pytest.raises(TypeError):
        transport_for(case.kind).deliver(case.config, email_message(notice()))
    with pytest.raises(TypeError):
        deliver(EmailConfig(to=("a@example.com",)), case.message)


def _destination(kind: str) -> str:
    return {
        "slack": "the Slack webhook",
        "pagerduty": "the PagerDuty endpoint",
        "webhook": "the webhook",
    }[kind]


# The receivers' own checks: a bad payload is refused, so a transport bug shows.


def post(receiver: HttpReceiver, body: bytes, headers: dict[str, str] | None = None):
    session = requests.Session()
    session.trust_env = False  # straight to loopback, whatever proxy the environment names
    with session:
        return session.post(
            receiver.url + "/direct",
            data=body,
            headers={"Content-Type": "application/json", **(headers or {})},
            timeout=REQUEST_TIMEOUT,
        )


def _slack_header(m):
    m["blocks"][0]["text"]["text"] = "h" * 151


def _slack_section(m):
    m["blocks"][1]["text"]["text"] = "s" * 3001


def _slack_field(m):
    m["blocks"][1]["fields"][0]["text"] = "f" * 2001


@pytest.mark.parametrize(
    ("spoil", "problem"),
    [
        (lambda m: m.pop("text"), "text must be a non-empty string"),
        (_slack_header, "blocks[0].text.text has 151 characters, more than 150"),
        (_slack_section, "blocks[1].text.text has 3001 characters, more than 3000"),
        (_slack_field, "blocks[1].fields[0].text has 2001 characters, more than 2000"),
        (lambda m: m.update(blocks="nope"), "blocks must be a non-empty list"),
        (lambda m: m["blocks"].append({"type": "banner"}), "'banner' is not a block type"),
        (lambda m: m["blocks"][0]["text"].update(type="mrkdwn"), "must be one of plain_text"),
    ],
)
def test_the_slack_receiver_refuses_a_bad_message(slack_receiver, spoil, problem):
    message = slack_message(notice())
    spoil(message)

    answer = post(slack_receiver, json.dumps(message).encode())

    assert (answer.status_code, answer.text) == (400, "invalid_payload")
    assert problem in " | ".join(slack_receiver.requests[-1].problems)


def test_the_slack_receiver_refuses_what_is_not_json(slack_receiver):
    answer = post(slack_receiver, b"payload=text", {"Content-Type": "text/plain"})

    assert answer.status_code == 400
    assert slack_receiver.requests[-1].problems == [
        "Content-Type is 'text/plain'",
        "the body is not a JSON object",
    ]


def test_the_receivers_take_a_valid_message_sent_by_anyone(
    slack_receiver, pagerduty_receiver, webhook_receiver
):
    # The other half of the checks' honesty: not everything is refused.
    webhook_receiver.secret = WEBHOOK_SECRET
    body = encode_body(webhook_body([notice()]))
    signed = webhook_headers(
        body, trace_id=TRACE, secret=WEBHOOK_SECRET, timestamp=int(time.time())
    )

    assert post(slack_receiver, encode_body(slack_message(notice()))).text == "ok"
    assert (
        post(pagerduty_receiver, encode_body(pagerduty_event(notice(), ROUTING_KEY))).json()[
            "status"
        ]
        == "success"
    )
    assert post(webhook_receiver, body, signed).status_code == 200
    for receiver in (slack_receiver, pagerduty_receiver, webhook_receiver):
        assert receiver.requests[-1].valid, receiver.requests[-1].problems


def _pd(action: str = "trigger", **changes: Any) -> dict[str, Any]:
    source = resolved() if action == "resolve" else notice()
    event = pagerduty_event(source, ROUTING_KEY)
    event.update(changes)
    return event


def _pd_payload(**changes: Any) -> dict[str, Any]:
    event = _pd()
    event["payload"].update(changes)
    return event


def _without(mapping: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k not in keys}


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        (_pd(routing_key="R" * 31), "routing_key must be a string of 32 characters"),
        (_pd(event_action="fire"), "event_action must be one of"),
        (_pd(dedup_key="d" * 256), "dedup_key must be a string of 1 to 255 characters"),
        (_without(_pd("resolve"), "dedup_key"), "dedup_key is required to resolve"),
        (_without(_pd(), "payload"), "a trigger needs a payload object"),
        (_pd_payload(summary="s" * 1025), "payload.summary has 1025 characters, more than 1024"),
        (_pd_payload(severity="fatal"), "payload.severity must be one of"),
        (_pd_payload(source=""), "payload.source must be a non-empty string"),
        (_pd_payload(timestamp="yesterday"), "payload.timestamp must be ISO 8601"),
        (_pd_payload(custom_details="x" * 520_000), "not under 512 KB"),
        (_pd(links=[{"text": "no href"}]), "links[0] must be an object with an href"),
    ],
)
def test_the_pagerduty_receiver_refuses_a_bad_event(pagerduty_receiver, event, problem):
    answer = post(pagerduty_receiver, json.dumps(event).encode())

    assert answer.status_code == 400
    assert answer.json()["status"] == "invalid event"
    assert problem in " | ".join(pagerduty_receiver.requests[-1].problems)


def _hook(**changes: Any) -> dict[str, Any]:
    body = webhook_body([notice()])
    body.update(changes)
    return body


def _hook_alert(**changes: Any) -> dict[str, Any]:
    body = _hook()
    body["alerts"][0].update(changes)
    return body


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (_hook(version="3"), 'version must be "4"'),
        (_without(_hook(), "trace_id"), "trace_id is missing"),
        (_without(_hook(), "groupKey"), "groupKey is missing"),
        (_hook(alerts=[]), "alerts must be a non-empty list"),
        (_hook(status="burning"), "status must be firing or resolved"),
        (_hook_alert(fingerprint=""), "alerts[0].fingerprint must be a non-empty string"),
        (_hook_alert(labels={"n": 1}), "alerts[0].labels must be an object of strings"),
        (_hook_alert(startsAt="noon"), "alerts[0].startsAt must be RFC 3339"),
    ],
)
def test_the_webhook_receiver_refuses_a_bad_body(webhook_receiver, body, problem):
    raw = encode_body(body)
    headers = webhook_headers(raw, trace_id=str(body.get("trace_id", "")))

    answer = post(webhook_receiver, raw, headers)

    assert answer.status_code == 400
    assert problem in " | ".join(webhook_receiver.requests[-1].problems)


def test_the_webhook_receiver_wants_the_trace_id_in_the_header_too(webhook_receiver):
    raw = encode_body(_hook())

    post(webhook_receiver, raw, webhook_headers(raw, trace_id="0" * 32))

    assert webhook_receiver.requests[-1].problems == [
        "the X-Trace-Id header is not the body's trace_id"
    ]


@pytest.mark.parametrize(
    ("sign", "problem"),
    [
        (lambda raw, now: {}, "the signature headers are missing"),
        (
            lambda raw, now: webhook_headers(raw, trace_id=TRACE, secret="w" * 20, timestamp=now),
            "the signature does not match the body",
        ),
        (
            lambda raw, now: webhook_headers(
                raw + b" ", trace_id=TRACE, secret=WEBHOOK_SECRET, timestamp=now
            ),
            "the signature does not match the body",
        ),
        (
            lambda raw, now: webhook_headers(
                raw, trace_id=TRACE, secret=WEBHOOK_SECRET, timestamp=now - 301
            ),
            "the signature is stale",
        ),
        (
            lambda raw, now: {"X-Signature-Timestamp": "soon", "X-Signature": "v1=00"},
            "X-Signature-Timestamp is not unix seconds",
        ),
    ],
)
def test_the_webhook_receiver_checks_the_signature(webhook_receiver, sign, problem):
    webhook_receiver.secret = WEBHOOK_SECRET
    raw = encode_body(_hook())

    answer = post(webhook_receiver, raw, {"X-Trace-Id": TRACE, **sign(raw, int(time.time()))})

    assert answer.status_code == 400
    assert webhook_receiver.requests[-1].problems == [problem]


# Email, through Django's SMTP backend to a real SMTP server.


EMAIL = EmailConfig(to=("oncall@example.com", "sre@example.com"))


def test_an_email_arrives_with_its_subject_parts_and_trace(email_to_receiver):
    content = email_message(notice())

    outcome = EmailTransport().deliver(EMAIL, content)

    assert outcome == Delivered(None)
    [mail] = email_to_receiver.messages
    assert mail.rcpt_tos == list(EMAIL.to)
    assert mail.mail_from == "controlplane@example.com"
    message = mail.message
    # Django folds an encoded subject onto a line of its own; unfolding leaves a space.
    assert message["Subject"].strip() == content.subject
    assert message["To"] == "oncall@example.com, sre@example.com"
    assert message["X-Trace-Id"] == TRACE
    assert message["X-Audit-Request-Id"] == "req-7f3a"
    assert message.get_content_type() == "multipart/alternative"
    assert message.get_body(("plain",)).get_content() == content.text
    assert message.get_body(("html",)).get_content() == content.html
    assert TRACE in content.text


def test_a_bundle_arrives_as_one_email(email_to_receiver):
    content = email_bundle([notice(alert_id=n, fingerprint=f"fp{n}") for n in range(3)])

    assert deliver(EMAIL, content) == Delivered(None)
    [mail] = email_to_receiver.messages
    assert mail.message["X-Alert-Count"] == "3"


def test_a_temporary_refusal_is_retried_then_delivered(email_to_receiver):
    email_to_receiver.refuse_next(1, 451)
    transport = EmailTransport()

    first = transport.deliver(EMAIL, email_message(notice()))
    second = transport.deliver(EMAIL, email_message(notice()))

    assert first == Retry("the SMTP server deferred the message (SMTP 451)")
    assert second == Delivered(None)
    assert len(email_to_receiver.messages) == 1


def test_a_permanent_refusal_gives_up(email_to_receiver):
    email_to_receiver.refuse_next(1, 550)

    outcome = EmailTransport().deliver(EMAIL, email_message(notice()))

    assert outcome == GiveUp("the SMTP server refused the message (SMTP 550)")
    assert email_to_receiver.messages == []


def test_every_recipient_refused_for_good_gives_up(email_to_receiver):
    email_to_receiver.refuse_next(1, 550, at="RCPT")

    outcome = EmailTransport().deliver(EMAIL, email_message(notice()))

    assert outcome == GiveUp("the SMTP server refused every recipient (SMTP 550)")
    assert email_to_receiver.messages == []


def test_every_recipient_deferred_is_retried(email_to_receiver):
    # Greylisting answers 450 at RCPT: the same message is taken a little later.
    email_to_receiver.refuse_next(1, 450, at="RCPT")

    outcome = EmailTransport().deliver(EMAIL, email_message(notice()))

    assert outcome == Retry("the SMTP server deferred every recipient (SMTP 450)")


def test_an_smtp_server_that_is_down_is_retried(email_to_receiver, settings):
    settings.EMAIL_PORT = free_port()

    outcome = EmailTransport().deliver(EMAIL, email_message(notice()))

    assert outcome == Retry("the SMTP server is unreachable: Connection refused")


def test_a_silent_smtp_server_is_retried_within_the_timeout(email_to_receiver, settings):
    with BlackHole() as hole:
        settings.EMAIL_PORT = hole.port

        outcome = EmailTransport(timeout=SHORT).deliver(EMAIL, email_message(notice()))

    assert outcome == Retry("the SMTP server did not answer within 0.5 s")


def test_the_console_backend_of_the_demo_delivers(settings, capsys):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    content = email_message(notice())

    assert EmailTransport().deliver(EMAIL, content) == Delivered(None)
    assert f"X-Trace-Id: {TRACE}" in capsys.readouterr().out


SAID = "what-the-server-said"


def _timed_out() -> smtplib.SMTPServerDisconnected:
    # smtplib turns a reply that timed out into a disconnection, raised from the timeout.
    try:
        try:
            raise TimeoutError(SAID)
        except TimeoutError as error:
            raise smtplib.SMTPServerDisconnected(
                f"Connection unexpectedly closed: {error}"
            ) from error
    except smtplib.SMTPServerDisconnected as disconnected:
        return disconnected


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (smtplib.SMTPAuthenticationError(535, SAID.encode()), GiveUp),
        (smtplib.SMTPAuthenticationError(454, SAID.encode()), Retry),
        (smtplib.SMTPSenderRefused(553, SAID.encode(), "cp@example.com"), GiveUp),
        (smtplib.SMTPDataError(421, SAID.encode()), Retry),
        (smtplib.SMTPConnectError(554, SAID.encode()), GiveUp),
        (smtplib.SMTPServerDisconnected(SAID), Retry),
        (_timed_out(), Retry),
        (smtplib.SMTPNotSupportedError(SAID), GiveUp),
        (smtplib.SMTPException(SAID), GiveUp),
        (ConnectionResetError(errno.ECONNRESET, SAID), Retry),
        (socket.gaierror(socket.EAI_NONAME, SAID), Retry),
        (BadHeaderError(SAID), GiveUp),
        (RuntimeError(SAID), Retry),
    ],
)
def test_smtp_failures_by_their_class(error, expected):
    outcome = smtp_outcome(error, timeout=10)

    assert type(outcome) is expected
    assert SAID not in outcome.reason


def test_an_smtp_timeout_says_so():
    assert smtp_outcome(_timed_out(), timeout=10) == Retry(
        "the SMTP server did not answer within 10 s"
    )


# The pieces, alone.


@pytest.mark.parametrize(
    ("header", "after"),
    [
        (None, None),
        ("0", 0.0),
        ("120", 120.0),
        (" 30 ", 30.0),
        ("3600", 3600.0),
        ("3601", 3600.0),
        ("9" * 400, 3600.0),
        ("-1", None),
        ("1e3", None),
        ("١٢", None),  # digits, but not ASCII ones
        ("Wed, 01 Jan 2025 00:00:30 GMT", 30.0),
        ("Wed, 01 Jan 2025 00:00:30 -0000", 30.0),
        ("Tue, 31 Dec 2024 23:59:00 GMT", 0.0),
        ("Thu, 01 Jan 2026 00:00:00 GMT", 3600.0),
        ("Wed, 32 Jan 2025 00:00:00 GMT", None),
        ("x" * 100, None),
    ],
)
def test_retry_after(header, after):
    now = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
    assert retry_after(header, now=now) == after


@pytest.mark.parametrize(
    ("body", "word"),
    [
        (b"channel_not_found", "channel_not_found"),
        (b"  invalid_payload\n", "invalid_payload"),
        (b"ok", "ok"),
        (b"Channel_Not_Found", ""),
        (b"no such channel", ""),
        (b"a" * 65, ""),
        (b"\xc3\xa9t\xc3\xa9", ""),
        (b"", ""),
    ],
)
def test_status_word(body, word):
    assert status_word(body) == word


def test_outcomes_are_frozen_and_bounded():
    with pytest.raises(AttributeError):
        Retry("x").reason = "y"
    with pytest.raises(ValueError, match="after_seconds"):
        Retry("x", after_seconds=LONGEST_RETRY_AFTER + 1)
    with pytest.raises(ValueError, match="after_seconds"):
        Retry("x", after_seconds=-1)
