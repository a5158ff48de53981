"""manage.py webhook_sink: a webhook receiver that prints what it receives.

The demo starts it on 127.0.0.1 and points its webhook channel at it
(seed_demo_paging), so a newcomer sees notifications arrive without a receiver of
their own. It takes the webhook payload of controlplane/paging/payloads.py (an
Alertmanager version 4 webhook with our keys) and prints one line per alert in it:
event, rule, severity, summary, alert id, trace id. With `-v 2` it prints the JSON too.

It answers 200 to every webhook it can read, 400 to a body that is not one, and GET
with a line saying what it is, so that something polling for it knows it is up. It is
for a demo and for tests: it keeps nothing, checks no signature and binds to loopback
unless told otherwise.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.paging.payloads import TRACE_HEADER

PREFIX = "webhook sink"
# Far more than a bundle of WEBHOOK_MOST_BUNDLED alerts takes; the sink keeps nothing.
MOST_BYTES = 4 * 1024 * 1024


def describe(body: Any) -> list[str]:
    """One line per alert of a webhook body (payloads.webhook_body), e.g.

        trigger api.5xx (critical): 52% of API requests fail with 5xx | alert 3 | trace 0af7…

    A body that is no webhook payload is one line saying so."""
    alerts = body.get("alerts") if isinstance(body, Mapping) else None
    if not isinstance(alerts, list):
        return ["a JSON body with no list of alerts: not a webhook of ours"]
    lines = [_alert_line(alert, body) for alert in alerts if isinstance(alert, Mapping)]
    truncated = body.get("truncatedAlerts")
    if isinstance(truncated, int) and truncated > 0:
        lines.append(f"...and {truncated} more alert(s) the message does not list")
    return lines or ["a webhook listing no alert"]


def _alert_line(alert: Mapping[str, Any], body: Mapping[str, Any]) -> str:
    labels = alert.get("labels") if isinstance(alert.get("labels"), Mapping) else {}
    test = "[TEST] " if alert.get("is_test") else ""
    event = alert.get("event") or alert.get("status") or "?"
    name = labels.get("alertname") or "?"
    severity = alert.get("severity") or labels.get("severity") or "?"
    summary = alert.get("summary") or ""
    trace = alert.get("trace_id") or body.get("trace_id") or "none"
    return (
        f"{test}{event} {name} ({severity}): {summary} | alert {alert.get('alert_id', '?')} "
        f"| trace {trace}"
    )


class _Handler(BaseHTTPRequestHandler):
    server: _SinkServer

    def do_GET(self) -> None:
        self._answer(200, b"webhook sink: POST webhooks here; it prints them.\n")

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._answer(411, b"Content-Length, please.\n")
            return
        if int(length) > MOST_BYTES:
            self.server.say(f"refused a POST to {self.path} of {length} bytes: too big")
            self._answer(413, b"too big\n")
            self.close_connection = True
            return
        raw = self.rfile.read(int(length))
        try:
            body = json.loads(raw)
        except ValueError:
            self.server.say(f"a POST to {self.path} that is not JSON ({len(raw)} bytes)")
            self._answer(400, b"not JSON\n")
            return
        lines = describe(body)
        if self.server.verbose:
            lines.append(f"{TRACE_HEADER}: {self.headers.get(TRACE_HEADER, '')}")
            lines.append(json.dumps(body, indent=2, ensure_ascii=False))
        self.server.say(*lines)
        self._answer(200, b"ok\n")

    def _answer(self, status: int, text: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)
        except OSError:
            pass  # the sender stopped waiting

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per alert says more than an access log


class _SinkServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], out, verbose: bool) -> None:
        super().__init__(address, _Handler)
        self.out = out
        self.verbose = verbose
        self._lock = threading.Lock()

    def say(self, *lines: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        with self._lock:  # handlers run in threads: one request's lines stay together
            for line in lines:
                self.out.write(f"{PREFIX} {stamp} {line}")
            self.out.flush()


class Command(BaseCommand):
    help = (
        "Receive webhooks on loopback and print one line per alert (the demo's webhook "
        "channel delivers here); -v 2 prints the JSON too."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=9099, help="port to listen on (9099)")
        parser.add_argument(
            "--host", default="127.0.0.1", help="address to listen on (127.0.0.1: loopback)"
        )

    def handle(self, *args, port: int, host: str, verbosity: int, **options) -> None:
        try:
            server = _SinkServer((host, port), self.stdout, verbose=verbosity >= 2)
        except OSError as error:
            raise CommandError(
                f"Cannot listen on {host}:{port} ({error.strerror or error}): name another "
                "port with --port, and point the webhook channel at it."
            ) from None
        self.stdout.write(f"{PREFIX}: listening on http://{host}:{server.server_port}/")
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
