"""The observability package on its own exports only what it writes, and nothing of ours."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def standalone(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("standalone") / "metrics.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Per-process files would hide the default registry this inspects.
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    finished = subprocess.run(
        [sys.executable, "-m", "tests.observability.standalone_metrics", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    return json.loads(out.read_text())


def test_the_package_alone_registers_no_controlplane_metric(standalone):
    assert [name for name in standalone["families"] if name.startswith("controlplane_")] == []


def test_every_family_the_package_declares_is_written_by_the_package(standalone):
    declared = standalone["declared"]

    # Counters are named without `_total` in the registry.
    assert {"http_server_request_duration_seconds", "job_runs"} <= set(declared)
    assert [name for name, written in declared.items() if not written] == []
