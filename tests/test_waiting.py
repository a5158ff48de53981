"""The wait for a process to serve: "not yet" in any form is retried, giving up says why."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests import waiting
from tests.services import free_port


@pytest.fixture
def server():
    """A loopback server answering each GET with the next (delay, status) of `script`."""

    class Handler(BaseHTTPRequestHandler):
        script: list[tuple[float, int]] = []
        calls = 0

        def do_GET(self) -> None:
            delay, status = Handler.script[min(Handler.calls, len(Handler.script) - 1)]
            Handler.calls += 1
            time.sleep(delay)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield Handler, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_a_first_answer_slower_than_the_request_timeout_is_retried(server, monkeypatch):
    handler, url = server
    handler.script = [(1.0, 200), (0.0, 200)]
    monkeypatch.setattr(waiting, "REQUEST_TIMEOUT", 0.2)

    response = waiting.until_serving(url, what="the slow server", within=10)

    assert response.status_code == 200
    assert handler.calls >= 2  # the first attempt timed out reading


def test_an_answer_that_is_not_ready_is_retried(server):
    handler, url = server
    handler.script = [(0.0, 503), (0.0, 503), (0.0, 200)]

    assert waiting.until_serving(url, what="the starting server", within=10).ok
    assert handler.calls == 3


def test_giving_up_names_the_url_the_process_and_the_last_error(server):
    handler, url = server
    handler.script = [(0.0, 503)]
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as process:
        try:
            with pytest.raises(waiting.WaitTimeout) as raised:
                waiting.until_serving(url, what="the server", process=process, within=0.3)
        finally:
            process.kill()

    message = str(raised.value)
    assert f"the server at {url} (pid {process.pid}) was not ready within 0.3 s" in message
    assert "HTTP 503" in message


def test_nothing_listening_is_retried_until_the_deadline():
    url = f"http://127.0.0.1:{free_port()}/"
    started = time.monotonic()

    with pytest.raises(waiting.WaitTimeout, match="ConnectionError"):
        waiting.until_serving(url, what="nobody", within=0.5)

    assert 0.5 <= time.monotonic() - started < 5


def test_a_process_that_exits_fails_the_wait_at_once_with_its_log(tmp_path):
    log = tmp_path / "child.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.exit('port already in use')"], stderr=out
        )
    process.wait()
    started = time.monotonic()

    with pytest.raises(waiting.WaitTimeout) as raised:
        waiting.until_serving(
            f"http://127.0.0.1:{free_port()}/", what="the child", process=process, log=log
        )

    assert time.monotonic() - started < 5, "no waiting for the deadline"
    assert "exited with status 1" in str(raised.value)
    assert "port already in use" in str(raised.value)


def test_a_log_line_ends_the_wait(tmp_path):
    log = tmp_path / "worker.log"
    child = (
        f"import time; time.sleep(0.3); open({str(log)!r}, 'w').write('w1 ready.'); time.sleep(30)"
    )
    with subprocess.Popen([sys.executable, "-c", child]) as process:
        try:
            waiting.until_log_contains(log, "ready.", what="the worker", process=process, within=10)
        finally:
            process.kill()


def test_readiness_can_be_an_error_status(server):
    # A Response is false for 4xx and 5xx; the wait must still return the ready one.
    handler, url = server
    handler.script = [(0.0, 503), (0.0, 404)]

    response = waiting.until_serving(
        url, what="the server", within=10, ready=lambda r: r.status_code == 404
    )

    assert response.status_code == 404
