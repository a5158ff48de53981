"""Real services for integration tests: a Celery worker on Redis, and friends."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import kombu.pools
import pytest
from django.conf import settings

from tests import services, waiting

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    """The test database, as a URL a subprocess can use."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    return f"postgres://{user}{password}@{host}:{db.get('PORT') or 5432}/{db['NAME']}"


def _reconnect(app) -> None:
    """Drop the app's cached broker pools and result backend, so a changed
    broker_url or result_backend takes effect even after earlier tests used the app."""
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None
    kombu.pools.reset()  # kombu keeps producer pools per broker URL, process-wide
    try:
        del app._local.backend
    except AttributeError:
        pass


class Workers:
    """Real `celery worker` processes on Redis; the test process publishes to them."""

    def __init__(self, broker: str, backend: str) -> None:
        self.broker, self.backend = broker, backend
        self.processes: list[tuple[subprocess.Popen, Path]] = []

    def start(self, name: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start a worker; `env` adds or overrides variables of its environment."""
        env = {
            **os.environ,
            "CELERY_BROKER_URL": self.broker,
            "CELERY_RESULT_BACKEND": self.backend,
            "DATABASE_URL": _database_url(),
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
        log_dir = Path(settings.VAR_DIR)
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"test-worker-{name}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                services.celery_worker_command(f"{name}@%h"),
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes.append((process, log_path))
        # Celery logs "<hostname> ready." once it consumes from the broker.
        waiting.until_log_contains(
            log_path, "ready.", what=f"the Celery worker {name}", process=process
        )
        return process

    def log_of(self, process: subprocess.Popen) -> Path:
        return next(path for started, path in self.processes if started is process)

    def logs(self) -> list[str]:
        return [path.read_text() for _, path in self.processes]

    def stop(self) -> None:
        for process, _ in self.processes:
            process.terminate()
        for process, _ in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def celery_workers(transactional_db, monkeypatch):
    """Start workers with workers.start(name); the test's publisher uses the same Redis."""
    from controlplane.celery import app

    redis_base = services.require_redis().rsplit("/", 1)[0]
    broker, backend = f"{redis_base}/14", f"{redis_base}/15"
    import redis

    for url in (broker, backend):
        redis.Redis.from_url(url).flushdb()
    workers = Workers(broker, backend)
    # Celery prefers these variables to app.conf, so they must change too.
    monkeypatch.setenv("CELERY_BROKER_URL", broker)
    monkeypatch.setenv("CELERY_RESULT_BACKEND", backend)
    previous = {k: app.conf[k] for k in ("broker_url", "result_backend", "task_always_eager")}
    app.conf.update(broker_url=broker, result_backend=backend, task_always_eager=False)
    _reconnect(app)
    old_backend = settings.CELERY_RESULT_BACKEND
    settings.CELERY_RESULT_BACKEND = backend
    try:
        yield workers
    finally:
        workers.stop()
        app.conf.update(previous)
        _reconnect(app)
        settings.CELERY_RESULT_BACKEND = old_backend


@pytest.fixture
def celery_worker(celery_workers):
    return celery_workers.start("solo")


from tests.integration.prometheus import prometheus_factory  # noqa: E402, F401
from tests.observability.conftest import _span_exporter, spans  # noqa: E402, F401
