"""The embedded broker: a worker polling the folder never takes a half-written message."""

from __future__ import annotations

import threading

from kombu import Connection

from controlplane import broker  # noqa: F401 - the alias is set by controlplane.celery
from controlplane.celery import app  # noqa: F401

MESSAGES = 400


def test_a_consumer_racing_a_producer_reads_every_message_whole(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
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
