from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from controlplane.catalog.models import Role
from tests.factories import make_schedule  # noqa: F401 (the tests import it from here)

LOOPBACK = ["127.0.0.0/8", "::1/128"]


@dataclass
class Page:
    """What the feed server answers at a path. With an `etag`, a request naming it in
    If-None-Match gets a 304, as a calendar server answers an unchanged feed."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    etag: str = ""


class FeedServer:
    """Calendar feeds on loopback: a real HTTP server answering what the test says,
    recording each request's path and headers."""

    def __init__(self) -> None:
        self.pages: dict[str, Page] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append((self.path, dict(self.headers.items())))
                page = owner.pages.get(self.path, Page(404, b"not found"))
                if page.etag and self.headers.get("If-None-Match") == page.etag:
                    self.send_response(304)
                    self.send_header("ETag", page.etag)
                    self.end_headers()
                    return
                self.send_response(page.status)
                headers = {"Content-Type": "text/calendar; charset=utf-8", **page.headers}
                if page.etag:
                    headers["ETag"] = page.etag
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(page.body)))
                self.end_headers()
                self.wfile.write(page.body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="session")
def feed_server_session():
    server = FeedServer()
    yield server
    server.close()


@pytest.fixture
def feeds(feed_server_session, settings) -> FeedServer:
    """The feed server, emptied, with loopback allowed as a feed address."""
    settings.ALLOWED_PRIVATE_NETWORKS = LOOPBACK
    feed_server_session.pages.clear()
    feed_server_session.requests.clear()
    return feed_server_session


@pytest.fixture
def people(org, member):
    """alice and bob, responders of org; carol, a member of no organisation here."""
    return {name: member(org, Role.RESPONDER, username=name) for name in ("alice", "bob")}


# The spans of a test (spans.get_finished_spans()), as the observability tests have them.
from tests.observability.conftest import _span_exporter, spans  # noqa: E402, F401
