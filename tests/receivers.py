"""Receivers on loopback that stand in for Slack, PagerDuty, a webhook and an SMTP
server in tests: real servers, checking what they get against ../shared/PROTOCOLS.md.

Each HTTP receiver records every request (`requests`: time, path, headers, raw and
parsed body, the problems its check found, the status it answered) and answers as the
real service would: Slack 200 `ok`, PagerDuty 202 with its JSON, a webhook 200; a
payload that fails the check gets the service's 400 (Slack `invalid_payload`), so a
transport bug shows as a refusal, never as a silent pass. A test scripts the next
answers, after which the receiver goes back to normal:

    slack.answer_next(2, 500, b"rollup_error")
    slack.answer_next(1, 429, headers={"Retry-After": "30"})
    pagerduty.hang_next(1, seconds=30)      # answers normally after 30 s (or at close)
    webhook.garbage_next(1)                  # bytes that are not HTTP, then hang up

The SMTP receiver (aiosmtpd) records each message taken and can refuse the next ones
with a temporary (451) or permanent (550) reply, at DATA or at RCPT.

The checks are written from PROTOCOLS.md, not from our payload code, and the webhook
signature is verified here by its own HMAC, so a bug shared by a payload builder and
its check cannot pass unnoticed.

What each message said, alert by alert: `receiver.delivered()` lists a `Notified`
(alert id, event, trace id) for every alert in every message the receiver accepted, so
a test counts notifications, not requests, whether they came alone or bundled (a
webhook's `alerts`, a Slack message or an email listing several). Pass `port=` to
start a receiver where one was stopped: a receiver that is down, then up again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import smtplib
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from requests.structures import CaseInsensitiveDict

from tests.waiting import DEADLINE, until, until_serving

READY_PATH = "/-/ready"


@dataclass
class Received:
    """One request as the receiver saw it."""

    at: float
    method: str
    path: str
    headers: CaseInsensitiveDict
    raw: bytes
    body: Any  # the parsed JSON, None when the body is not JSON
    problems: list[str]
    answered: int | None = None  # the status sent; None when it hung up or sent garbage

    @property
    def valid(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Notified:
    """One alert's notification found in a message a receiver took."""

    alert_id: int | None  # None when the message does not say which alert
    event: str  # trigger, reminder, acknowledge, resolve, test
    trace_id: str  # "" when the message carries none


# Our messages' titles by event (paging.payloads.EVENT_TITLES), written out here: a
# changed wording should fail a test rather than pass unread.
_EVENTS_BY_TITLE = {
    "Firing": "trigger",
    "Still firing": "reminder",
    "Acknowledged": "acknowledge",
    "Resolved": "resolve",
    "Test": "test",
}


def _block_texts(block: Any) -> list[str]:
    """The texts of a Slack block: its text, its fields', its context elements'."""
    if not isinstance(block, dict):
        return []
    items = [block.get("text"), *block.get("fields", []), *block.get("elements", [])]
    return [
        item["text"]
        for item in items
        if isinstance(item, dict) and isinstance(item.get("text"), str)
    ]


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Hang:
    seconds: float


@dataclass(frozen=True)
class _Garbage:
    pass


_Act = _Answer | _Hang | _Garbage


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        if self.path == READY_PATH:
            self._send(_Answer(200, b"ready"))
        else:
            self._send(_Answer(404, b"not found"))

    def do_POST(self) -> None:
        receiver = self.server.receiver
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        # Recorded before answering: once a sender has its answer, the record is there.
        received = receiver._record(self, raw)
        act = receiver._next_act()
        if act is None:
            act = receiver.answer_for(received)
        if isinstance(act, _Hang):
            receiver._wake.wait(act.seconds)  # its time is up, or released, or closing
            if receiver._closing.is_set():
                return  # closing: the sender gave up long ago
            act = receiver.answer_for(received)
        if isinstance(act, _Garbage):
            self.wfile.write(b"\x00\xff this is not HTTP \xfe\r\n\r\n")
            self.close_connection = True
            return
        received.answered = act.status
        self._send(act)

    def _send(self, answer: _Answer) -> None:
        try:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
        except OSError:
            pass  # the sender stopped waiting: its business

    def log_message(self, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: HttpReceiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a sender that hangs up mid-answer is what several tests do on purpose


class HttpReceiver:
    """A threaded HTTP server on 127.0.0.1 (a free port) that checks and records."""

    name = "receiver"

    def __init__(self, port: int = 0) -> None:
        self.requests: list[Received] = []
        self._script: deque[_Act] = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._wake = threading.Event()  # set by release() and close(): hangs end
        # Port 0: a free one. A given port: where a stopped receiver was (bound again at
        # once: the server sets SO_REUSEADDR).
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.receiver = self
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(0.05,),
            name=f"{self.name}-receiver",
            daemon=True,
        )
        self._thread.start()
        until_serving(self.url + READY_PATH, what=f"the {self.name} receiver")

    # Scripting.

    def answer_next(
        self, count: int, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> None:
        """Answer the next `count` requests with `status`, `body` and `headers`."""
        self._add(count, _Answer(status, body, dict(headers or {})))

    def hang_next(self, count: int, seconds: float) -> None:
        """Say nothing to the next `count` requests for `seconds` (then answer normally);
        closing the receiver ends the wait."""
        self._add(count, _Hang(seconds))

    def release(self) -> None:
        """End the hangs under way now: they answer normally at once."""
        with self._lock:
            woken, self._wake = self._wake, threading.Event()
        woken.set()

    def garbage_next(self, count: int) -> None:
        """Answer the next `count` requests with bytes that are not HTTP, and hang up."""
        self._add(count, _Garbage())

    def _add(self, count: int, act: _Act) -> None:
        with self._lock:
            self._script.extend([act] * count)

    def _next_act(self) -> _Act | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    # Recording and checking.

    def _record(self, handler: _Handler, raw: bytes) -> Received:
        headers = CaseInsensitiveDict(handler.headers.items())
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        received = Received(
            at=time.time(),
            method=handler.command,
            path=handler.path,
            headers=headers,
            raw=raw,
            body=body,
            problems=self.check(raw, body, headers),
        )
        with self._lock:
            self.requests.append(received)
        return received

    def check(self, raw: bytes, body: Any, headers: Mapping[str, str]) -> list[str]:
        """What is wrong with a request, per PROTOCOLS.md; [] when nothing is."""
        raise NotImplementedError

    def answer_for(self, received: Received) -> _Answer:
        """The service's own answer: its success, or its 400 for a bad payload."""
        raise NotImplementedError

    def notified(self, received: Received) -> list[Notified]:
        """The alerts one request told of (several for a bundle)."""
        raise NotImplementedError

    def delivered(self) -> list[Notified]:
        """Every alert told of by a request this receiver accepted (answered 2xx)."""
        with self._lock:
            accepted = [r for r in self.requests if r.answered and 200 <= r.answered < 300]
        return [notice for received in accepted for notice in self.notified(received)]

    def until_received(self, count: int) -> list[Received]:
        """Wait until `count` requests have arrived (for a sender that stopped waiting
        before the receiver recorded, e.g. after a timeout)."""
        return until(
            lambda: list(self.requests) if len(self.requests) >= count else None,
            what=f"{count} request(s) at the {self.name} receiver",
        )

    def close(self) -> None:
        self._closing.set()
        self._wake.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(DEADLINE)


def _json_content_type(headers: Mapping[str, str]) -> list[str]:
    kind = headers.get("Content-Type", "").split(";")[0].strip().lower()
    return [] if kind == "application/json" else [f"Content-Type is {kind or 'missing'!r}"]


def _text_object(value: Any, where: str, limit: int, types: tuple[str, ...]) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where} must be a text object"]
    problems = []
    if value.get("type") not in types:
        problems.append(f"{where}.type must be one of {', '.join(types)}")
    text = value.get("text")
    if not isinstance(text, str) or not text:
        problems.append(f"{where}.text must be a non-empty string")
    elif len(text) > limit:
        problems.append(f"{where}.text has {len(text)} characters, more than {limit}")
    return problems


class SlackReceiver(HttpReceiver):
    """Slack incoming webhooks: JSON with `text` and Block Kit `blocks`."""

    name = "Slack"
    HEADER_LIMIT, SECTION_LIMIT, FIELD_LIMIT, MOST_BLOCKS, MOST_FIELDS = 150, 3000, 2000, 50, 10

    def check(self, raw: bytes, body: Any, headers: Mapping[str, str]) -> list[str]:
        problems = _json_content_type(headers)
        if not isinstance(body, dict):
            return [*problems, "the body is not a JSON object"]
        if not isinstance(body.get("text"), str) or not body["text"]:
            problems.append("text must be a non-empty string")
        blocks = body.get("blocks")
        if not isinstance(blocks, list) or not blocks:
            return [*problems, "blocks must be a non-empty list"]
        if len(blocks) > self.MOST_BLOCKS:
            problems.append(f"{len(blocks)} blocks, more than {self.MOST_BLOCKS}")
        for number, block in enumerate(blocks):
            problems += self._block(block, f"blocks[{number}]")
        return problems

    def _block(self, block: Any, where: str) -> list[str]:
        if not isinstance(block, dict):
            return [f"{where} must be an object"]
        kind = block.get("type")
        if kind == "header":
            return _text_object(
                block.get("text"), f"{where}.text", self.HEADER_LIMIT, ("plain_text",)
            )
        if kind == "section":
            problems = []
            if "text" not in block and "fields" not in block:
                problems.append(f"{where} needs text or fields")
            if "text" in block:
                problems += _text_object(
                    block["text"], f"{where}.text", self.SECTION_LIMIT, ("mrkdwn", "plain_text")
                )
            fields = block.get("fields", [])
            if not isinstance(fields, list) or len(fields) > self.MOST_FIELDS:
                problems.append(f"{where}.fields must be a list of at most {self.MOST_FIELDS}")
            else:
                for n, item in enumerate(fields):
                    problems += _text_object(
                        item, f"{where}.fields[{n}]", self.FIELD_LIMIT, ("mrkdwn", "plain_text")
                    )
            return problems
        if kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                return [f"{where}.elements must be a list of 1 to 10"]
            problems = []
            for n, item in enumerate(elements):
                problems += _text_object(
                    item, f"{where}.elements[{n}]", self.SECTION_LIMIT, ("mrkdwn", "plain_text")
                )
            return problems
        if kind in ("divider", "actions", "image"):
            return []
        return [f"{where}.type {kind!r} is not a block type"]

    def answer_for(self, received: Received) -> _Answer:
        if received.valid:
            return _Answer(200, b"ok", {"Content-Type": "text/html"})
        return _Answer(400, b"invalid_payload", {"Content-Type": "text/html"})

    # A message, alone or bundled, tells of each alert in reading order: a title that
    # begins a block ("<emoji> Firing: …", or "<emoji> *[CRITICAL] Firing: …*" in a
    # bundle), then its alert page link, then its trace id.
    _TITLE = re.compile(
        r"^:[a-z0-9_+-]+: (?:\*\[[A-Z]+\] )?(?:\[TEST\] )?"
        r"(Still firing|Firing|Acknowledged|Resolved|Test): "
    )
    _ALERT_PAGE = re.compile(r"/alerts/(\d+)/\|Alert page>")
    _TRACE = re.compile(r"Trace `([^`]*)`")

    def notified(self, received: Received) -> list[Notified]:
        found: list[dict[str, Any]] = []
        for block in (received.body or {}).get("blocks", []):
            for text in _block_texts(block):
                title = self._TITLE.match(text)
                if title:
                    found.append({"event": _EVENTS_BY_TITLE[title.group(1)]})
                if not found:
                    continue
                page = self._ALERT_PAGE.search(text)
                if page and "alert_id" not in found[-1]:
                    found[-1]["alert_id"] = int(page.group(1))
                trace = self._TRACE.search(text)
                if trace and "trace_id" not in found[-1]:
                    found[-1]["trace_id"] = "" if trace.group(1) == "none" else trace.group(1)
        return [
            Notified(item.get("alert_id"), item["event"], item.get("trace_id", ""))
            for item in found
        ]


class PagerDutyReceiver(HttpReceiver):
    """PagerDuty Events API v2 (`POST /v2/enqueue`)."""

    name = "PagerDuty"
    ACTIONS = ("trigger", "acknowledge", "resolve")
    SEVERITIES = ("critical", "error", "warning", "info")
    EVENT_LIMIT = 512_000  # "under 512 KB", read as the smaller number

    def check(self, raw: bytes, body: Any, headers: Mapping[str, str]) -> list[str]:
        problems = _json_content_type(headers)
        if len(raw) >= self.EVENT_LIMIT:
            problems.append(f"the event is {len(raw)} bytes, not under 512 KB")
        if not isinstance(body, dict):
            return [*problems, "the body is not a JSON object"]
        key = body.get("routing_key")
        if not isinstance(key, str) or len(key) != 32:
            problems.append("routing_key must be a string of 32 characters")
        action = body.get("event_action")
        if action not in self.ACTIONS:
            problems.append(f"event_action must be one of {', '.join(self.ACTIONS)}")
        dedup = body.get("dedup_key")
        if action in ("acknowledge", "resolve") and dedup is None:
            problems.append(f"dedup_key is required to {action}")
        if dedup is not None and (not isinstance(dedup, str) or not 0 < len(dedup) <= 255):
            problems.append("dedup_key must be a string of 1 to 255 characters")
        if action == "trigger":
            problems += self._payload(body.get("payload"))
        for n, link in enumerate(body.get("links", [])):
            if not isinstance(link, dict) or not isinstance(link.get("href"), str):
                problems.append(f"links[{n}] must be an object with an href")
        return problems

    def _payload(self, payload: Any) -> list[str]:
        if not isinstance(payload, dict):
            return ["a trigger needs a payload object"]
        problems = []
        summary = payload.get("summary")
        if not isinstance(summary, str) or not summary:
            problems.append("payload.summary must be a non-empty string")
        elif len(summary) > 1024:
            problems.append(f"payload.summary has {len(summary)} characters, more than 1024")
        if not isinstance(payload.get("source"), str) or not payload["source"]:
            problems.append("payload.source must be a non-empty string")
        if payload.get("severity") not in self.SEVERITIES:
            problems.append(f"payload.severity must be one of {', '.join(self.SEVERITIES)}")
        if "timestamp" in payload:
            try:
                datetime.fromisoformat(payload["timestamp"])
            except (TypeError, ValueError):
                problems.append("payload.timestamp must be ISO 8601")
        if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
            problems.append("payload.custom_details must be an object")
        return problems

    def answer_for(self, received: Received) -> _Answer:
        if received.valid:
            answer = {
                "status": "success",
                "message": "Event processed",
                "dedup_key": received.body.get("dedup_key", "generated-by-receiver"),
            }
            status = 202
        else:
            answer = {
                "status": "invalid event",
                "message": "Event object is invalid",
                "errors": received.problems,
            }
            status = 400
        return _Answer(status, json.dumps(answer).encode(), {"Content-Type": "application/json"})

    def notified(self, received: Received) -> list[Notified]:
        """A trigger names its alert in custom_details; an acknowledge or a resolve
        carries only the dedup_key, so its alert is the one of a trigger with that key
        accepted before it. None when there was none: PagerDuty drops a follow-up for a
        key it does not know (PROTOCOLS.md), so it reached no incident."""
        body = received.body if isinstance(received.body, dict) else {}
        action = body.get("event_action")
        if action == "trigger":
            details = (body.get("payload") or {}).get("custom_details") or {}
            return [
                Notified(
                    details.get("alert_id"),
                    details.get("event", "trigger"),
                    details.get("trace_id") or "",
                )
            ]
        return [Notified(self.alert_of(body.get("dedup_key"), before=received), action or "", "")]

    def alert_of(self, dedup_key: str | None, before: Received | None = None) -> int | None:
        """The alert of the first trigger accepted with `dedup_key` (before the request
        `before`, when given)."""
        with self._lock:
            for request in self.requests:
                if request is before:
                    break
                body = request.body if isinstance(request.body, dict) else {}
                if (
                    request.answered == 202
                    and body.get("event_action") == "trigger"
                    and body.get("dedup_key") == dedup_key
                ):
                    return body["payload"]["custom_details"].get("alert_id")
        return None


class WebhookReceiver(HttpReceiver):
    """An Alertmanager webhook (version 4) receiver that also wants our `trace_id`, and,
    when given the secret, a valid signature no older than `tolerance` seconds."""

    name = "webhook"
    ALERT_KEYS = (
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    )
    TOP_KEYS = (
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    )

    def __init__(self, secret: str = "", tolerance: float = 300, port: int = 0) -> None:
        self.secret = secret
        self.tolerance = tolerance
        super().__init__(port)

    def check(self, raw: bytes, body: Any, headers: Mapping[str, str]) -> list[str]:
        problems = _json_content_type(headers) + self._signature(raw, headers)
        if not isinstance(body, dict):
            return [*problems, "the body is not a JSON object"]
        problems += [f"{key} is missing" for key in self.TOP_KEYS if key not in body]
        if body.get("version") != "4":
            problems.append('version must be "4"')
        if body.get("status") not in ("firing", "resolved"):
            problems.append("status must be firing or resolved")
        for key in ("groupLabels", "commonLabels", "commonAnnotations"):
            if key in body and not isinstance(body[key], dict):
                problems.append(f"{key} must be an object")
        if not isinstance(body.get("trace_id"), str):
            problems.append("trace_id is missing")
        elif headers.get("X-Trace-Id") != body["trace_id"]:
            problems.append("the X-Trace-Id header is not the body's trace_id")
        alerts = body.get("alerts")
        if not isinstance(alerts, list) or not alerts:
            return [*problems, "alerts must be a non-empty list"]
        for n, alert in enumerate(alerts):
            problems += self._alert(alert, f"alerts[{n}]")
        return problems

    def _alert(self, alert: Any, where: str) -> list[str]:
        if not isinstance(alert, dict):
            return [f"{where} must be an object"]
        problems = [f"{where}.{key} is missing" for key in self.ALERT_KEYS if key not in alert]
        if alert.get("status") not in ("firing", "resolved"):
            problems.append(f"{where}.status must be firing or resolved")
        for key in ("labels", "annotations"):
            value = alert.get(key)
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                problems.append(f"{where}.{key} must be an object of strings")
        for key in ("startsAt", "endsAt"):
            try:
                datetime.fromisoformat(alert.get(key))
            except (TypeError, ValueError):
                problems.append(f"{where}.{key} must be RFC 3339")
        if not isinstance(alert.get("fingerprint"), str) or not alert.get("fingerprint"):
            problems.append(f"{where}.fingerprint must be a non-empty string")
        return problems

    def _signature(self, raw: bytes, headers: Mapping[str, str]) -> list[str]:
        if not self.secret:
            return []
        timestamp = headers.get("X-Signature-Timestamp", "")
        signature = headers.get("X-Signature", "")
        if not timestamp or not signature:
            return ["the signature headers are missing"]
        if not timestamp.isascii() or not timestamp.isdigit():
            return ["X-Signature-Timestamp is not unix seconds"]
        if abs(time.time() - int(timestamp)) > self.tolerance:
            return ["the signature is stale"]
        # Computed here from the documented scheme, not with the payload module's code.
        mac = hmac.new(self.secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256)
        if not hmac.compare_digest(f"v1={mac.hexdigest()}", signature):
            return ["the signature does not match the body"]
        return []

    def answer_for(self, received: Received) -> _Answer:
        if received.valid:
            return _Answer(200, b"", {})
        return _Answer(400, b"", {})

    def notified(self, received: Received) -> list[Notified]:
        body = received.body if isinstance(received.body, dict) else {}
        return [
            Notified(alert.get("alert_id"), alert.get("event", ""), alert.get("trace_id") or "")
            for alert in body.get("alerts", [])
            if isinstance(alert, dict)
        ]


# SMTP.


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    at: float


@dataclass(frozen=True)
class _Refusal:
    code: int
    at: str  # "RCPT" or "DATA"


class _SmtpHandler:
    def __init__(self, receiver: SmtpReceiver) -> None:
        self.receiver = receiver

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        # One act per transaction, chosen when it begins.
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.refusal = self.receiver._next_refusal()
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refusal = getattr(envelope, "refusal", None)
        if refusal is not None and refusal.at == "RCPT":
            return _reply(refusal.code)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        refusal = getattr(envelope, "refusal", None)
        if refusal is not None and refusal.at == "DATA":
            return _reply(refusal.code)
        self.receiver._take(envelope)
        return "250 Message accepted for delivery"


def _reply(code: int) -> str:
    if 400 <= code < 500:
        return f"{code} 4.3.0 Try again later"
    return f"{code} 5.7.1 Refused"


class _LoopbackController(Controller):
    def _trigger_server(self) -> None:
        # Bound to port 0: the port to knock on is the one the system gave.
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpReceiver:
    """An SMTP server (aiosmtpd) on 127.0.0.1, recording every message it takes."""

    def __init__(self) -> None:
        # aiosmtpd logs every command at INFO: a failing test's output would be all SMTP.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        self.messages: list[ReceivedMail] = []
        self._script: deque[_Refusal] = deque()
        self._lock = threading.Lock()
        self.host = "127.0.0.1"
        self._controller = _LoopbackController(
            _SmtpHandler(self),
            hostname=self.host,
            port=0,
            server_hostname="receiver.test",
            ready_timeout=DEADLINE,
        )
        self._controller.start()
        self.port: int = self._controller.port
        until(self._greets, what=f"the SMTP receiver at {self.host}:{self.port}")

    def _greets(self) -> bool:
        with smtplib.SMTP(self.host, self.port, local_hostname="tests", timeout=5) as client:
            return client.noop()[0] == 250

    def refuse_next(self, count: int, code: int, at: str = "DATA") -> None:
        """Refuse the next `count` messages with `code` (451 temporary, 550 permanent),
        at DATA or at every RCPT (all recipients refused)."""
        if at not in ("DATA", "RCPT"):
            raise ValueError("at is DATA or RCPT")
        with self._lock:
            self._script.extend([_Refusal(code, at)] * count)

    def _next_refusal(self) -> _Refusal | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def _take(self, envelope: Any) -> None:
        # Stored with newlines, as a mailbox stores what came with SMTP's CRLF.
        content = envelope.content.replace(b"\r\n", b"\n")
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        mail = ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message, time.time())
        with self._lock:
            self.messages.append(mail)

    # The text part tells of each alert, alone or bundled, as lines of its own.
    _STATE = re.compile(r"^State: +(.+)$", re.MULTILINE)
    _ALERT_PAGE = re.compile(r"^Alert page: +\S*/alerts/(\d+)/$", re.MULTILINE)
    _TRACE = re.compile(r"^Trace id: +(\S+)$", re.MULTILINE)

    @classmethod
    def notified(cls, mail: ReceivedMail) -> list[Notified]:
        text = mail.message.get_body(preferencelist=("plain",)).get_content()
        states = cls._STATE.findall(text)
        pages = [int(pk) for pk in cls._ALERT_PAGE.findall(text)]
        traces = ["" if t == "none" else t for t in cls._TRACE.findall(text)]
        if not len(states) == len(pages) == len(traces):
            raise AssertionError(f"cannot tell the alerts of this mail apart:\n{text}")
        return [
            Notified(pk, _EVENTS_BY_TITLE[state], trace)
            for state, pk, trace in zip(states, pages, traces, strict=True)
        ]

    def delivered(self) -> list[Notified]:
        """Every alert told of by a message this server took."""
        with self._lock:
            taken = list(self.messages)
        return [notice for mail in taken for notice in self.notified(mail)]

    def close(self) -> None:
        self._controller.stop()
