"""SQLite configured for several processes at once: web, worker and beat on one file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.waiting import DEADLINE

ROOT = Path(__file__).resolve().parents[1]


def on_sqlite(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """Run Python with the project's settings on an SQLite file of its own: the
    suite itself may run on PostgreSQL, and these checks hold whatever it runs on."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "VAR_DIR": str(tmp_path / "var"),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=DEADLINE * 2,
    )


def test_concurrent_writers_never_see_database_is_locked_and_the_file_is_in_wal_mode(tmp_path):
    # As a module: a script's own folder (tests/) would come first on sys.path, and
    # tests/observability would shadow the observability package.
    result = on_sqlite(tmp_path, "-m", "tests.sqlite_writers")

    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["errors"] == []
    assert seen["stuck"] == 0
    assert seen["rows"] == 2 * 40
    assert seen["journal_mode"] == "wal"


def test_a_sqlite_database_url_gets_the_concurrency_options(tmp_path):
    code = "from django.conf import settings; import json; "
    code += "print(json.dumps(settings.DATABASES['default']['OPTIONS']))"
    result = on_sqlite(tmp_path, "-c", code)

    assert result.returncode == 0, result.stderr
    options = json.loads(result.stdout)
    assert options["transaction_mode"] == "IMMEDIATE"
    assert options["timeout"] == 20
    assert "PRAGMA journal_mode=WAL" in options["init_command"]
    assert "PRAGMA busy_timeout=20000" in options["init_command"]
