"""The small project of tests/observability served by a real gunicorn: prometheus_client
decides at import time whether it writes per-process files, so multiprocess behaviour
needs real worker processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests import services, waiting

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")
# Each worker says when it has loaded the project: a worker that answered first
# does not mean the other one is up, and the tests need them all.
CONFIG = """\
from observability.gunicorn import child_exit  # noqa: F401


def post_worker_init(worker):
    worker.log.info("worker %s serves", worker.pid)
"""


@contextmanager
def gunicorn(tmp_path: Path, workers: int, multiproc_dir: Path | None) -> Iterator[str]:
    """gunicorn with `workers` workers on a free port, all of them serving; its URL.
    With `multiproc_dir`, under PROMETHEUS_MULTIPROC_DIR (created here)."""
    services.require("gunicorn", GUNICORN.exists(), f"no {GUNICORN}")
    port = services.free_port()
    log = tmp_path / "gunicorn.log"
    config = tmp_path / "gunicorn.conf.py"
    config.write_text(CONFIG)
    env = {
        key: value for key, value in os.environ.items() if key.upper() != "PROMETHEUS_MULTIPROC_DIR"
    }
    env |= {"DJANGO_SETTINGS_MODULE": "tests.observability.settings_standalone"}
    env["PYTHONPATH"] = str(ROOT)
    if multiproc_dir is not None:
        multiproc_dir.mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc_dir)
    process = subprocess.Popen(
        [
            str(GUNICORN),
            "--config",
            str(config),
            "--workers",
            str(workers),
            "--timeout",
            "120",
            "--bind",
            f"127.0.0.1:{port}",
            "tests.observability.wsgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        waiting.until(
            lambda: len(re.findall(r"worker \d+ serves", log.read_text())) >= workers,
            what=f"gunicorn's {workers} worker(s) (to log 'worker … serves' in {log})",
            process=process,
            log=log,
        )
        waiting.until_serving(f"{url}/ok/", what="gunicorn", process=process, log=log)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
