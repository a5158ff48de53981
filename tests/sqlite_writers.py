"""Run by tests/test_sqlite.py in a process of its own, on an SQLite file named by
DATABASE_URL and opened with the project's settings: two threads that each read,
then write, in transaction after transaction. Prints what it saw as JSON."""

from __future__ import annotations

import json
import sys
import threading

import django

WRITERS, TRANSACTIONS = 2, 40


def main() -> None:
    django.setup()
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS writes (id INTEGER PRIMARY KEY, note TEXT)")
        cursor.execute("PRAGMA journal_mode")
        [mode] = cursor.fetchone()
    connection.close()
    start = threading.Barrier(WRITERS)
    errors: list[str] = []

    def write(writer: int) -> None:
        try:
            start.wait(timeout=60)
            for n in range(TRANSACTIONS):
                # Read, then write: the pattern of every evaluation and admin save, and
                # the one a deferred transaction cannot survive under contention.
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute("SELECT count(*) FROM writes")
                    [seen] = cursor.fetchone()
                    cursor.execute(
                        "INSERT INTO writes (note) VALUES (%s)", [f"{writer}-{n}-after-{seen}"]
                    )
        except Exception as error:  # reported in the output, with the others
            errors.append(f"{type(error).__name__}: {error}")
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM writes")
        [rows] = cursor.fetchone()
    json.dump(
        {
            "journal_mode": mode,
            "errors": errors,
            "rows": rows,
            "stuck": sum(t.is_alive() for t in threads),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
