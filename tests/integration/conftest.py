"""Real services for integration tests: a Celery worker on Redis, and friends."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from tests import services

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


@pytest.fixture
def celery_worker(transactional_db):
    """A real `celery worker` process on Redis; the test process publishes to it."""
    from controlplane.celery import app

    redis_base = services.require_redis().rsplit("/", 1)[0]
    broker, backend = f"{redis_base}/14", f"{redis_base}/15"
    import redis

    for url in (broker, backend):
        redis.Redis.from_url(url).flushdb()

    env = {
        **os.environ,
        "CELERY_BROKER_URL": broker,
        "CELERY_RESULT_BACKEND": backend,
        "DATABASE_URL": _database_url(),
        "PYTHONPATH": str(ROOT),
    }
    log = open(ROOT / "var" / "test-worker.log", "w")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "controlplane",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    previous = {k: app.conf[k] for k in ("broker_url", "result_backend", "task_always_eager")}
    app.conf.update(broker_url=broker, result_backend=backend, task_always_eager=False)
    old_backend = settings.CELERY_RESULT_BACKEND
    settings.CELERY_RESULT_BACKEND = backend
    app.__dict__.pop("backend", None)
    try:
        deadline = time.monotonic() + 30
        while b"ready." not in (ROOT / "var" / "test-worker.log").read_bytes():
            if worker.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    "the Celery worker did not start:\n"
                    + (ROOT / "var" / "test-worker.log").read_text()[-3000:]
                )
            time.sleep(0.2)
        yield worker
    finally:
        worker.terminate()
        worker.wait(timeout=20)
        log.close()
        app.conf.update(previous)
        app.__dict__.pop("backend", None)
        settings.CELERY_RESULT_BACKEND = old_backend
