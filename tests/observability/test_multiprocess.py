"""/metrics under gunicorn with several workers reports them all.

prometheus_client decides at import time whether it writes per-process files, so
this needs real processes: a gunicorn of our own with two workers, serving the
small project in tests/observability.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests import services, waiting
from tests.waiting import REQUEST_TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")
REQUESTS = 24
WORKERS = 2
# Each worker says when it has loaded the project: a worker that answered first
# does not mean the other one is up, and the test needs both.
CONFIG = """\
from observability.gunicorn import child_exit  # noqa: F401


def post_worker_init(worker):
    worker.log.info("worker %s serves", worker.pid)
"""


@pytest.fixture
def gunicorn(tmp_path):
    services.require("gunicorn", GUNICORN.exists(), f"no {GUNICORN}")
    multiproc_dir = tmp_path / "prometheus"
    multiproc_dir.mkdir()
    port = services.free_port()
    log = tmp_path / "gunicorn.log"
    config = tmp_path / "gunicorn.conf.py"
    config.write_text(CONFIG)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.observability.settings_standalone",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir),
        "PYTHONPATH": str(ROOT),
    }
    process = subprocess.Popen(
        [
            str(GUNICORN),
            "--config",
            str(config),
            "--workers",
            str(WORKERS),
            # A loaded machine may take a while to import Django; never kill a booting worker.
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
            lambda: len(re.findall(r"worker \d+ serves", log.read_text())) >= WORKERS,
            what=f"gunicorn's {WORKERS} workers (to log 'worker … serves' in {log})",
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


def _count(body: str, metric: str, **labels: str) -> float:
    """The sum of the samples of `metric` whose labels include `labels`."""
    total = 0.0
    for line in body.splitlines():
        match = re.fullmatch(rf"{re.escape(metric)}\{{(.*)\}} (\S+)", line)
        if match and labels.items() <= dict(re.findall(r'(\w+)="([^"]*)"', match[1])).items():
            total += float(match[2])
    return total


def test_metrics_add_up_across_workers(gunicorn):
    # Each request holds its worker for a moment, so eight at a time need both.
    def call(_: int) -> int:
        response = requests.get(
            f"{gunicorn}/pid/", params={"sleep": "0.05"}, timeout=REQUEST_TIMEOUT
        )
        response.raise_for_status()
        requests.get(f"{gunicorn}/job/", timeout=REQUEST_TIMEOUT).raise_for_status()
        return response.json()["pid"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        pids = set(pool.map(call, range(REQUESTS)))

    ours = requests.get(f"{gunicorn}/metrics", timeout=REQUEST_TIMEOUT).text
    # django_prometheus' view reads the same files, for projects that route to it.
    theirs = requests.get(f"{gunicorn}/django-prometheus/metrics", timeout=REQUEST_TIMEOUT).text

    assert len(pids) == WORKERS, "both workers should have served requests"
    http = {"http_route": "pid/", "http_response_status_code": "200"}
    for body in (ours, theirs):
        assert _count(body, "http_server_request_duration_seconds_count", **http) == REQUESTS
    job = {"job": "tests.job", "result": "success"}
    assert _count(ours, "job_runs_total", **job) == REQUESTS
    stamps = [
        line
        for line in ours.splitlines()
        if line.startswith('job_last_success_timestamp_seconds{job="tests.job"}')
    ]
    assert len(stamps) == 1, "a max-mode gauge is one series, not one per worker"
