"""A Prometheus stand-in on loopback for the client's own edge cases: it answers
whatever a test says (garbage, slowness, errors a real Prometheus rarely gives).
Tests of the engine's semantics use the real Prometheus (tests/integration)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.answer()

    def do_POST(self):
        self.answer()

    def answer(self):
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        parts = urlsplit(self.path)
        fake.requests.append(
            {
                "method": self.command,
                "path": parts.path,
                "params": {k: v[0] for k, v in parse_qs(parts.query or body).items()},
                "headers": dict(self.headers),
            }
        )
        fake.routes.get(parts.path, fake.reply)(self)

    def log_message(self, *args):
        pass


class FakePrometheus:
    """An HTTP server whose next answers are set by the test."""

    def __init__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.fake = self
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.reset()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self):
        self.requests = []
        # Answers by path (e.g. "/api/v1/format_query"); any other path gets `reply`.
        self.routes = {}
        self.answer(200, vector())

    @staticmethod
    def raw(status, body: bytes, content_type="application/json", length=None, then_sleep=0.0):
        def reply(handler):
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body) if length is None else length))
            handler.end_headers()
            handler.wfile.write(body)
            handler.wfile.flush()
            if then_sleep:
                time.sleep(then_sleep)
            handler.close_connection = True

        return reply

    def json(self, status, payload):
        return self.raw(status, json.dumps(payload).encode())

    def answer(self, status, payload):
        self.reply = self.json(status, payload)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def vector(*elements):
    return {"status": "success", "data": {"resultType": "vector", "result": list(elements)}}
