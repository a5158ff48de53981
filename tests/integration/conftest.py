"""Real services for integration tests: a Celery worker on Redis, and friends."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
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
    """Real `celery worker` processes on Redis, and `celery beat` when a test wants its
    ticks; the test process publishes to them."""

    # What each logs once it is at work: a worker once it consumes from the broker.
    READY = {"worker": "ready.", "beat": "beat: Starting..."}

    def __init__(self, broker: str, backend: str) -> None:
        self.broker, self.backend = broker, backend
        self.processes: list[tuple[subprocess.Popen, Path]] = []
        self._kinds: dict[int, str] = {}

    def start(
        self, name: str, env: dict[str, str] | None = None, *, wait: bool = True
    ) -> subprocess.Popen:
        """Start a worker; `env` adds or overrides variables of its environment.
        `wait=False` returns at once (then `until_ready`), so that several start together."""
        command = services.celery_worker_command(f"{name}@%h")
        process = self._spawn(name, "worker", command, env)
        if wait:
            self.until_ready(process)
        return process

    def start_beat(
        self, env: dict[str, str] | None = None, *, wait: bool = True
    ) -> subprocess.Popen:
        """Start a real `celery beat` (django-celery-beat's DatabaseScheduler, reading the
        test database's PeriodicTask rows: see `schedule_ticks`), sending to the workers'
        broker. Stopped with the workers."""
        process = self._spawn("beat", "beat", services.celery_beat_command(), env)
        if wait:
            self.until_ready(process)
        return process

    def until_ready(self, *processes: subprocess.Popen) -> None:
        for process in processes:
            kind = self._kinds[process.pid]
            waiting.until_log_contains(
                self.log_of(process),
                self.READY[kind],
                what=f"the Celery {kind} {self.log_of(process).stem}",
                process=process,
            )

    def environment(self, env: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of a process on the same database and broker (a worker, beat,
        or a web server the test starts), with `env` added."""
        return {
            **os.environ,
            "CELERY_BROKER_URL": self.broker,
            "CELERY_RESULT_BACKEND": self.backend,
            "DATABASE_URL": _database_url(),
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }

    def _spawn(
        self, name: str, kind: str, command: list[str], env: dict[str, str] | None
    ) -> subprocess.Popen:
        environment = self.environment(env)
        log_path = services.run_dir() / f"test-worker-{name}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
            )
        self.processes.append((process, log_path))
        self._kinds[process.pid] = kind
        return process

    def log_of(self, process: subprocess.Popen) -> Path:
        return next(path for started, path in self.processes if started is process)

    def logs(self) -> list[str]:
        return [path.read_text() for _, path in self.processes]

    def stop(self) -> None:
        for process, _ in self.processes:
            if process.poll() is None:
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
    redis_base = services.require_redis().rsplit("/", 1)[0]
    # Two databases of their own, flushed first; TEST_BROKER_DB moves them so that two
    # suites can share one Redis, and each xdist worker takes the two below the last.
    first = int(os.environ.get("TEST_BROKER_DB", "14")) - 2 * services.xdist_worker()
    with _celery_on(f"{redis_base}/{first}", f"{redis_base}/{first + 1}", monkeypatch) as workers:
        yield workers


@contextmanager
def _celery_on(broker: str, backend: str, monkeypatch) -> Iterator[Workers]:
    """Workers on `broker` and `backend` (flushed first), with this process's Celery app
    publishing there too; every worker and beat started is stopped at the end."""
    import redis

    from controlplane.celery import app

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


class RedisServer:
    """A `redis-server` of the test's own on a free loopback port, keeping nothing on
    disk: `crash()` and `start()` it again on the same port mid-test, and no other
    test run sharing the usual Redis notices."""

    def __init__(self, directory: Path) -> None:
        self.binary = services.require_binary("redis-server", "redis-server")
        self.directory = directory
        self.port = services.free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.log = directory / "redis.log"
        self.process: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        import redis

        command = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        waiting.until(
            lambda: redis.Redis.from_url(self.url, socket_timeout=2).ping(),
            what=f"redis-server on port {self.port}",
            process=self.process,
            log=self.log,
            retry_on=(redis.ConnectionError, OSError),
        )

    def crash(self) -> None:
        """SIGKILL: everything it held is lost, as in a crash."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.running:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    """A private Redis for the module's tests (see RedisServer)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def celery_on_redis_server(transactional_db, monkeypatch, redis_server):
    """celery_workers, on the private `redis_server` (databases 0 and 1)."""
    if not redis_server.running:  # a test that crashed it failed before starting it again
        redis_server.start()
    with _celery_on(f"{redis_server.url}/0", f"{redis_server.url}/1", monkeypatch) as workers:
        yield workers


# The beat schedules the migrations seed, by PeriodicTask name: (migration, function).
# A transactional test's flush empties the table, so tests seed again what they need.
SCHEDULE_SEEDS = {
    "alerting: evaluate due rules": [
        ("controlplane.alerting.migrations.0002_schedules_and_builtin_rules", "create_schedules"),
        ("controlplane.alerting.migrations.0004_schedules_every_second", "every_second"),
    ],
    "alerting: dispatch alert events": [
        ("controlplane.alerting.migrations.0004_schedules_every_second", "every_second"),
    ],
    "paging: escalate": [("controlplane.paging.migrations.0002_schedules", "seed")],
    "paging: deliver notifications": [("controlplane.paging.migrations.0002_schedules", "seed")],
    "oncall: synchronize calendars": [("controlplane.oncall.migrations.0002_schedules", "seed")],
}


def schedule_ticks(*names: str) -> None:
    """Beat's schedule: exactly the named ticks, as their migrations seed them (every
    other PeriodicTask disabled). Call before start_beat."""
    import importlib

    from django.apps import apps
    from django_celery_beat.models import PeriodicTask

    seeds = dict.fromkeys(seed for name in names for seed in SCHEDULE_SEEDS[name])
    for module, function in seeds:
        getattr(importlib.import_module(module), function)(apps, None)
    PeriodicTask.objects.exclude(name__in=names).update(enabled=False)
    assert set(PeriodicTask.objects.filter(enabled=True).values_list("name", flat=True)) == set(
        names
    ), "a seeded tick is disabled or missing"


from tests.integration.prometheus import prometheus_factory  # noqa: E402, F401
from tests.observability.conftest import _span_exporter, spans  # noqa: E402, F401
from tests.paging.conftest import (  # noqa: E402, F401  (end-to-end paging tests)
    loopback_allowed,
    pagerduty_receiver,
    slack_receiver,
    smtp_receiver,
    webhook_receiver,
)
