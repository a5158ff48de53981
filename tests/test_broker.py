"""The embedded broker: a worker polling the folder never takes a half-written message,
and a publisher beside a consumer in one process never routes to a table without its queue."""

from __future__ import annotations

import threading

from kombu import Connection

from controlplane import broker
from controlplane.celery import app  # noqa: F401

MESSAGES = 400


def test_a_consumer_racing_a_producer_reads_every_message_whole(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(tmp_path / "control"),
        "store_processed": False,
        "polling_interval": 0.001,  # as eager as it gets, to meet each write half-way
    }
    received: list[int] = []
    errors: list[BaseException] = []

    def consume() -> None:
        with Connection("filesystem://", transport_options=options) as connection:
            queue = connection.SimpleQueue("race")
            try:
                while len(received) < MESSAGES:
                    message = queue.get(timeout=30)
                    received.append(message.payload["n"])
                    message.ack()
            except BaseException as error:  # reported by the test
                errors.append(error)
            finally:
                queue.close()

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    with Connection("filesystem://", transport_options=options) as connection:
        assert type(connection.transport).__module__ == "controlplane.broker"
        queue = connection.SimpleQueue("race")
        for n in range(MESSAGES):
            queue.put({"n": n, "padding": "x" * 20_000})
        queue.close()
    consumer.join(60)

    assert errors == []
    assert sorted(received) == list(range(MESSAGES))


def test_a_bind_has_reached_the_table_when_it_returns_even_if_another_connection_declared_it(
    tmp_path, monkeypatch
):
    # Two connections of one process share kombu's binding state. The first to bind is
    # held just before it writes the table; the second, told the binding exists, must not
    # publish into a table that lacks it.
    folder = tmp_path / "in"
    folder.mkdir()
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(tmp_path / "control"),
        "store_processed": False,
        "polling_interval": 0.01,
    }
    first_write_held = threading.Event()
    release_first_write = threading.Event()
    original = broker.Channel._update_table

    def held_once(self, exchange, change):
        if not first_write_held.is_set():
            first_write_held.set()
            release_first_write.wait(10)
        return original(self, exchange, change)

    monkeypatch.setattr(broker.Channel, "_update_table", held_once)

    def bind_first() -> None:
        with Connection("filesystem://", transport_options=options) as connection:
            connection.SimpleQueue("held").close()

    first = threading.Thread(target=bind_first, daemon=True)
    first.start()
    assert first_write_held.wait(10), "the first connection never reached its table write"
    with Connection("filesystem://", transport_options=options) as connection:
        queue = connection.SimpleQueue("held")
        queue.put({"n": 1})
        release_first_write.set()
        message = queue.get(timeout=10)
        message.ack()
        queue.close()
    first.join(10)
    assert message.payload == {"n": 1}
