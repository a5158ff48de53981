"""celery_queue_length{queue}: each queue's waiting messages, asked of a real broker when
/metrics is scraped; no series (and one warning) when the broker cannot be read."""

from __future__ import annotations

import logging
import os
import uuid
from urllib.parse import urlsplit

import pytest
from celery import Celery
from kombu import Exchange, Queue

from observability import metrics
from observability.celery import QUEUE_LENGTH, QueueLengthCollector, app_queues
from tests import services, waiting


def samples(collector: QueueLengthCollector) -> dict[str, float]:
    (family,) = collector.collect()
    assert family.name == QUEUE_LENGTH
    return {sample.labels["queue"]: sample.value for sample in family.samples}


def publish(app: Celery, counts: dict[str, int]) -> None:
    """Queue `counts[queue]` messages on each queue, as a producer would, unconsumed.

    Over a connection of its own: the app's producer pool may still hold a connection to
    the broker an earlier test used, which the collector (a fresh connection) never reads.
    """
    with app.connection_for_write() as connection:
        for queue, count in counts.items():
            for _ in range(count):
                app.send_task("tests.never_run", queue=queue, connection=connection)


def redis_broker() -> str:
    """A Redis database of this suite's own (TEST_BROKER_DB), emptied."""
    import redis

    base = services.require_redis().rsplit("/", 1)[0]
    url = f"{base}/{os.environ.get('TEST_BROKER_DB', '14')}"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture(autouse=True)
def _brokers_as_the_tests_say(monkeypatch) -> None:
    # Celery prefers CELERY_BROKER_URL (the suite's memory://) to an app's own broker.
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)


@pytest.fixture
def log_lines(caplog):
    caplog.set_level(logging.DEBUG, logger="observability.celery")
    return lambda: [
        (record.levelname, record.getMessage())
        for record in caplog.records
        if record.name == "observability.celery"
    ]


# Which queues ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        pytest.param({}, ["celery"], id="the default queue"),
        pytest.param({"task_default_queue": "work"}, ["work"], id="a renamed default"),
        pytest.param(
            {
                "task_queues": [Queue("fast", Exchange("fast")), Queue("celery")],
                "task_routes": {
                    "a.task": {"queue": "slow"},
                    "b.task": {"queue": Queue("fast")},
                    "c.task": {"exchange": "direct"},
                },
            },
            ["celery", "fast", "slow"],
            id="declared and routed, each once",
        ),
    ],
)
def test_app_queues(conf, expected):
    app = Celery("queues", broker="memory://", set_as_current=False)
    app.conf.update(conf)
    assert app_queues(app) == expected


# Real brokers ---------------------------------------------------------------------------


def test_redis_counts_equal_the_messages_waiting(log_lines):
    app = Celery("redis-queues", broker=redis_broker(), set_as_current=False)
    publish(app, {"alpha": 3, "beta": 1})
    collector = QueueLengthCollector(app, ["alpha", "beta", "never-used"])

    # Redis deletes an empty list: a queue it does not know has nothing waiting.
    assert samples(collector) == {"alpha": 3.0, "beta": 1.0, "never-used": 0.0}
    publish(app, {"beta": 4})
    assert samples(collector)["beta"] == 5.0
    assert log_lines() == []


def test_rabbitmq_counts_equal_the_messages_waiting():
    url = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
    parts = urlsplit(url)
    services.require(
        "RabbitMQ", services.port_open(parts.hostname, parts.port or 5672), f"nothing at {url}"
    )
    app = Celery("amqp-queues", broker=url, set_as_current=False)
    queue = f"tests-queue-length-{uuid.uuid4().hex[:8]}"
    try:
        publish(app, {queue: 4})
        collector = QueueLengthCollector(app, [queue, f"{queue}-undeclared"])
        # RabbitMQ may count a message a moment after confirming it.
        counts = waiting.until(
            lambda: (found := samples(collector))[queue] == 4 and found,
            what=f"RabbitMQ to count the 4 messages published on {queue}",
        )
        assert counts == {queue: 4.0, f"{queue}-undeclared": 0.0}
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_delete(queue)


def test_the_embedded_filesystem_broker_counts_its_files(tmp_path):
    import controlplane.celery  # noqa: F401 - puts controlplane.broker behind filesystem://

    folders = {name: tmp_path / name for name in ("in", "processed", "control")}
    for folder in folders.values():
        folder.mkdir()
    app = Celery("files", broker="filesystem://", set_as_current=False)
    app.conf.broker_transport_options = {
        "data_folder_in": str(folders["in"]),
        "data_folder_out": str(folders["in"]),
        "processed_folder": str(folders["processed"]),
        "control_folder": str(folders["control"]),
    }
    publish(app, {"celery": 2, "other": 1})
    assert samples(QueueLengthCollector(app)) == {"celery": 2.0}
    assert samples(QueueLengthCollector(app, ["celery", "other"])) == {
        "celery": 2.0,
        "other": 1.0,
    }


def test_memory_broker_counts_this_process_own_messages():
    # kombu keeps memory:// queues per process, whatever the URL's host: a queue of this
    # test's own, so other tests' messages on `celery` are not counted.
    queue = f"q-{uuid.uuid4().hex}"
    app = Celery("memory-queues", broker="memory://", set_as_current=False)
    publish(app, {queue: 2})
    assert samples(QueueLengthCollector(app, [queue])) == {queue: 2.0}


# A broker that cannot be read -----------------------------------------------------------


def test_no_series_and_one_warning_while_the_broker_is_down(log_lines):
    down = f"redis://127.0.0.1:{services.free_port()}/0"
    app = Celery("down", broker=down, set_as_current=False)
    collector = QueueLengthCollector(app, ["celery"], timeout=0.5)

    assert samples(collector) == {}
    assert samples(collector) == {}
    levels = [level for level, _ in log_lines()]
    assert levels == ["WARNING", "DEBUG"]
    assert "cannot read the broker" in log_lines()[0][1]

    # Back up (here: pointed at a broker that answers): series again, and one info line.
    app.conf.broker_url = redis_broker()
    assert samples(collector) == {"celery": 0.0}
    assert log_lines()[-1] == ("INFO", f"{QUEUE_LENGTH}: the broker answers again")
    assert samples(collector) == {"celery": 0.0}
    assert len(log_lines()) == 3


def test_a_broker_that_never_answers_costs_the_timeout_not_the_scrape(log_lines):
    with services.BlackHole() as hole:
        app = Celery("silent", broker=f"redis://127.0.0.1:{hole.port}/0", set_as_current=False)
        assert samples(QueueLengthCollector(app, ["celery"], timeout=0.3)) == {}
        assert hole.connections >= 1
    assert [level for level, _ in log_lines()] == ["WARNING"]
    assert "Timeout" in log_lines()[0][1]


# On /metrics ------------------------------------------------------------------------------


def test_the_control_plane_exports_its_queues_on_metrics(client, monkeypatch):
    from controlplane.celery import app

    broker = redis_broker()
    monkeypatch.setenv("CELERY_BROKER_URL", broker)  # Celery prefers it to app.conf
    publish(app, {"celery": 2})

    body = client.get("/metrics").content.decode()

    assert f"# TYPE {QUEUE_LENGTH} gauge" in body
    assert f'{QUEUE_LENGTH}{{queue="celery"}} 2.0' in body.splitlines()


def test_the_family_is_declared_without_series_when_the_broker_is_down(client, monkeypatch):
    monkeypatch.setenv("CELERY_BROKER_URL", f"redis://127.0.0.1:{services.free_port()}/0")

    lines = client.get("/metrics").content.decode().splitlines()

    assert f"# TYPE {QUEUE_LENGTH} gauge" in lines
    assert not [line for line in lines if line.startswith(f"{QUEUE_LENGTH}{{")]


def test_registering_again_replaces_the_collector():
    (registered,) = [c for c in metrics.live_collectors() if isinstance(c, QueueLengthCollector)]
    app = Celery("replacement", broker="memory://", set_as_current=False)
    from observability.celery import register_queue_length

    try:
        replacement = register_queue_length(app)
        assert [c for c in metrics.live_collectors() if isinstance(c, QueueLengthCollector)] == [
            replacement
        ]
    finally:
        metrics.register_live_collector(QUEUE_LENGTH, registered)
