"""Reaching the real services tests need.

Locally a missing service skips the test with its reason; under CI=true the same
absence fails the run, so a green CI always means the real thing was exercised.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(name: str, available: bool, reason: str) -> None:
    if available:
        return
    message = f"{name} is not available: {reason}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: every service must be present)", pytrace=False)
    pytest.skip(message)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    require(name, path is not None, f"install the Debian package '{package}'")
    return path


def redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> str:
    url = redis_url()
    parts = urlsplit(url)
    require(
        "Redis", port_open(parts.hostname or "127.0.0.1", parts.port or 6379), f"nothing at {url}"
    )
    return url


def require_postgresql() -> None:
    from django.db import connection

    require(
        "PostgreSQL",
        connection.vendor == "postgresql",
        "the suite runs on SQLite unless DATABASE_URL names PostgreSQL; run "
        "DATABASE_URL=postgres://postgres@127.0.0.1:5432/test make test (.ci/run sets it)",
    )


def xdist_worker() -> int:
    """This test process's number among pytest-xdist's workers (0 when run alone)."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(name.removeprefix("gw")) if name.removeprefix("gw").isdigit() else 0


def run_dir() -> Path:
    """A directory of this test process's own under VAR_DIR, for the logs of the
    processes it starts (two xdist workers may start a worker of the same name)."""
    from django.conf import settings

    directory = Path(settings.VAR_DIR) / f"tests-gw{xdist_worker()}"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def celery_worker_command(hostname: str, loglevel: str = "INFO") -> list[str]:
    """A real `celery worker` for tests and benches: one process (solo pool), and no
    heartbeat, mingle or gossip chatter between workers started side by side."""
    import sys

    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "controlplane",
        "worker",
        "--pool=solo",
        f"--hostname={hostname}",
        f"--loglevel={loglevel}",
        "--without-heartbeat",
        "--without-mingle",
        "--without-gossip",
    ]


def celery_beat_command(loglevel: str = "INFO") -> list[str]:
    """A real `celery beat` for tests: the settings' DatabaseScheduler (django-celery-beat).
    Celery writes no PID file unless asked, so runs side by side do not collide."""
    import sys

    return [sys.executable, "-m", "celery", "-A", "controlplane", "beat", f"--loglevel={loglevel}"]


class BlackHole:
    """A loopback port that takes connections and never answers: a source aimed at it
    stalls until its client's timeout. `connections` counts how often it was asked."""

    def __init__(self) -> None:
        import threading

        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(128)
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.held: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._swallow, daemon=True)
        self._thread.start()

    @property
    def connections(self) -> int:
        return len(self.held)

    def _swallow(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self.socket.accept()
            except OSError:  # the accept timeout, or closed
                continue
            self.held.append(connection)  # kept open, never read nor written

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
        self.socket.close()
        for connection in self.held:
            connection.close()

    def __enter__(self) -> BlackHole:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
