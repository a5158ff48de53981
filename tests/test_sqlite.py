"""SQLite configured for several processes at once: web, worker and beat on one file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connection, transaction

from tests.waiting import DEADLINE

ON_SQLITE = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
sqlite_only = pytest.mark.skipif(
    not ON_SQLITE, reason="SQLite's locking; the suite runs on another database"
)

WRITERS = 2
TRANSACTIONS = 40


@sqlite_only
def test_the_database_is_in_wal_mode(db):
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        [mode] = cursor.fetchone()

    assert mode == "wal"


@sqlite_only
def test_concurrent_writers_never_see_database_is_locked(transactional_db):
    # Each transaction reads, then writes: the pattern of every evaluation and every
    # admin save, and the one a deferred transaction cannot survive under contention.
    start = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            start.wait(timeout=DEADLINE)
            for n in range(TRANSACTIONS):
                with transaction.atomic():
                    seen = Group.objects.count()
                    Group.objects.create(name=f"writer-{writer}-{n}-after-{seen}")
        except BaseException as error:  # reported below, with the others
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=DEADLINE)

    assert not any(thread.is_alive() for thread in threads), "a writer is stuck"
    assert errors == []
    assert Group.objects.count() == WRITERS * TRANSACTIONS


def test_a_sqlite_database_url_gets_the_concurrency_options(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "VAR_DIR": str(tmp_path / "var"),
    }
    code = "from django.conf import settings; import json; "
    code += "print(json.dumps(settings.DATABASES['default']['OPTIONS']))"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=DEADLINE
    )

    assert result.returncode == 0, result.stderr
    options = json.loads(result.stdout)
    assert options["transaction_mode"] == "IMMEDIATE"
    assert options["timeout"] == 20
    assert "PRAGMA journal_mode=WAL" in options["init_command"]
    assert "PRAGMA busy_timeout=20000" in options["init_command"]
