"""The real services a bench runs on, started and stopped the same way by every module:
a PostgreSQL database of the bench's own, an emptied Redis database as the broker, real
Celery workers and beat, and servers started from the command line (Prometheus,
Alertmanager). Each start waits until the thing answers, and names it when it does not.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# Seconds a stopped process gets to exit before it is killed.
STOP_GRACE = 20.0


def missing_services(*, prometheus: bool = True) -> list[str]:
    """What the bench needs and this machine lacks, in words for a "skipped" line."""
    from tests.services import port_open

    missing = []
    if prometheus and not (shutil.which("prometheus") and shutil.which("promtool")):
        missing.append("the Debian package prometheus")
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        missing.append("DATABASE_URL=postgres://… (the workers need PostgreSQL)")
    if not port_open(REDIS_HOST, REDIS_PORT):
        missing.append(f"Redis on {REDIS_HOST}:{REDIS_PORT}")
    return missing


def setup_django() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    django.setup()


@contextmanager
def bench_database(name: str) -> Iterator[str]:
    """A database of the bench's own, created afresh and migrated (create_test_db runs
    the migrations), dropped at the end (stop the workers first: PostgreSQL drops no
    database that has sessions), so a bench never fights a test run over test_<name>.
    Yields its name."""
    from django.db import connection

    previous = connection.settings_dict["NAME"]
    connection.settings_dict.setdefault("TEST", {})["NAME"] = name
    creation = connection.creation
    created = creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        yield created
    finally:
        creation.destroy_test_db(previous, verbosity=0)


def database_url(name: str) -> str:
    from django.conf import settings

    db = settings.DATABASES["default"]
    return (
        f"postgres://{db.get('USER') or 'postgres'}@{db.get('HOST') or '127.0.0.1'}:"
        f"{db.get('PORT') or 5432}/{name}"
    )


def fresh_broker(database: str, redis_db: int) -> tuple[str, dict[str, str]]:
    """An emptied Redis database as the broker of this process and of the workers and
    beat it starts; returns the broker URL and their environment."""
    import redis

    from controlplane.celery import app

    broker = f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}"
    redis.Redis.from_url(broker).flushdb()
    os.environ["CELERY_BROKER_URL"] = broker
    app.conf.update(broker_url=broker, task_always_eager=False)
    # The pools cached for an earlier bench's broker would keep this process's nudges
    # going there. Dropped, not closed: kombu keeps one pool per broker URL for the
    # process, and a closed one would come back for the next bench on the same URL.
    app._pool = None
    app.amqp._producer_pool = None
    env = {
        **os.environ,
        "CELERY_BROKER_URL": broker,
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": database_url(database),
    }
    return broker, env


def log_path(name: str) -> Path:
    return Path(tempfile.gettempdir()) / f"{name}.log"


def worker_log(n: int, prefix: str = "bench") -> Path:
    return log_path(f"{prefix}-worker-{n}")


def start_workers(env: dict, broker: str, count: int = 2, prefix: str = "bench"):
    """`count` real workers, each answering a ping before this returns; worker n logs
    to worker_log(n, prefix)."""
    from celery.utils.nodenames import host_format
    from kombu.exceptions import OperationalError

    from controlplane.celery import app
    from tests import waiting
    from tests.services import celery_worker_command

    hostnames = [host_format(f"{prefix}{n}@%h") for n in range(count)]
    logs = [worker_log(n, prefix) for n in range(count)]
    workers = [
        subprocess.Popen(
            celery_worker_command(hostname, "WARNING"),
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        for hostname, log in zip(hostnames, logs, strict=True)
    ]
    try:
        for worker, hostname, log in zip(workers, hostnames, logs, strict=True):
            waiting.until(
                partial(app.control.ping, destination=[hostname], timeout=1),
                what=f"the Celery worker {hostname} (a ping through {broker})",
                process=worker,
                log=log,
                retry_on=(OSError, OperationalError),
            )
    except BaseException:
        stop(workers)
        raise
    return workers


def start_beat(env: dict, log: Path) -> subprocess.Popen:
    """Celery beat on the database's schedules (django-celery-beat's DatabaseScheduler,
    as scripts/demo.sh runs it). Its first tick is the caller's to wait for: what a
    tick does shows in the database."""
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "controlplane", "beat", "--loglevel=INFO"],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def start_server(argv: Sequence[str], ready_url: str, what: str, log: Path) -> subprocess.Popen:
    """A server started from the command line, returned once `ready_url` answers 2xx."""
    from tests import waiting

    with log.open("wb") as out:
        process = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT)
    try:
        waiting.until_serving(ready_url, what=what, process=process, log=log)
    except BaseException:  # not ready, or interrupted: leave nothing behind
        stop([process])
        raise
    return process


def stop(processes: Iterable[subprocess.Popen]) -> None:
    """Terminate, then wait; a process still there after STOP_GRACE is killed."""
    processes = [p for p in processes if p.poll() is None]
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
