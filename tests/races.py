"""Workers racing: the same work started at once in threads, each on its own database
connection (PostgreSQL tests of compare-and-set updates and row locks)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import connection

T = TypeVar("T")


def race(racers: int, work: Callable[[], T]) -> list[T]:
    """Run `work` in `racers` threads released together; their results, in the order
    they finished. Fails if any raised or did not finish within 30 s."""
    barrier = threading.Barrier(racers)
    results: list[T] = []
    errors: list[BaseException] = []

    def racer() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(work())
        except Exception as error:  # surfaced below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=racer) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [], errors
    assert len(results) == racers, f"{racers - len(results)} racer(s) did not finish"
    return results
