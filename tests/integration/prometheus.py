"""A real Prometheus holding data whose true values are known, for integration tests.

    series = {
        'controlplane_queue_backlog{queue="calendar"}': [(T0, 3), (T0 + 60, 5)],
        'controlplane_job_runs_total{job="etl",result="success"}': [(T0, 0), (T0 + 60, 6)],
    }
    with PrometheusServer.with_data(tmp_path, series) as prometheus:
        ...query prometheus.url at a fixed time at or after T0...

The data is written as OpenMetrics, turned into TSDB blocks by
`promtool tsdb create-blocks-from openmetrics`, and served by `prometheus` on a
free loopback port. Start-up takes about a tenth of a second.

Gotchas this module takes care of:
- Backfilled samples lie in the past, so always query with a fixed `time`
  (T0 onwards; a query looks back at most 5 minutes for the latest sample).
  Prometheus deletes blocks older than its retention: we keep 100 years.
- Counters must be named *_total and declared `# TYPE <name without _total> counter`;
  histograms are declared through `types={"family": "histogram"}` and written as
  family_bucket{le=...}, family_count and family_sum series.
- Timestamps are in seconds. A series' samples must be in time order, or promtool
  drops the stragglers without a word: we sort them and refuse duplicates.
- promtool cuts blocks at 2-hour boundaries unless told otherwise: we ask for one block
  a year (its hidden --max-block-duration), as hundreds of blocks backfill slowly.

Register the fixture in a conftest with
`from tests.integration.prometheus import prometheus_factory  # noqa: F401`.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests import waiting
from tests.services import free_port, require

T0 = datetime(2026, 1, 1, tzinfo=UTC)
"""Where test data starts: fixed, so that answers are the same on every run."""

Timestamp = float | datetime
Points = Iterable[tuple[Timestamp, float]]

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_FAMILY_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created", ""),
    "gauge": ("",),
    "unknown": ("",),
}
_CONFIG = "global:\n  scrape_interval: 1h\n  evaluation_interval: 1h\n"


def require_prometheus() -> tuple[str, str]:
    """Paths of prometheus and promtool; skips (fails under CI=true) without them."""
    prometheus = shutil.which("prometheus")
    promtool = shutil.which("promtool")
    require(
        "Prometheus",
        prometheus is not None and promtool is not None,
        "install the Debian package 'prometheus' (it ships prometheus and promtool)",
    )
    return prometheus, promtool


def series_key(name: str, labels: Mapping[str, str] | None = None) -> str:
    """'name{a="b"}' with the label values escaped as OpenMetrics wants."""
    if not labels:
        return name
    pairs = ",".join(f'{label}="{_escape(value)}"' for label, value in sorted(labels.items()))
    return f"{name}{{{pairs}}}"


def write_openmetrics(series: Mapping[str, Points], types: Mapping[str, str] | None = None) -> str:
    """OpenMetrics text for `series` (key: 'name{labels}', value: (time, value) points).

    Metric types come from `types` (family -> type); otherwise *_total is a
    counter and anything else a gauge.
    """
    types = dict(types or {})
    families: dict[str, list[str]] = {}
    for key, points in series.items():
        match = _NAME.match(key)
        if match is None:
            raise ValueError(f"series {key!r} does not start with a metric name")
        family, kind = _family(match.group(), types)
        lines = families.setdefault(f"# TYPE {family} {kind}", [])
        seen: set[float] = set()
        for timestamp, value in sorted((_seconds(t), float(v)) for t, v in points):
            if timestamp in seen:
                raise ValueError(f"series {key!r} has two samples at {timestamp}")
            seen.add(timestamp)
            lines.append(f"{key} {_number(value)} {timestamp:.3f}")
    out = []
    for header, lines in families.items():
        out.append(header)
        out.extend(lines)
    out.append("# EOF")
    return "\n".join(out) + "\n"


def backfill(text: str, data_dir: Path) -> None:
    """Turn OpenMetrics `text` into TSDB blocks under `data_dir`."""
    _, promtool = require_prometheus()
    data_dir.mkdir(parents=True, exist_ok=True)
    source = data_dir.parent / f"{data_dir.name}.om"
    source.write_text(text)
    result = subprocess.run(
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            # One block for a year instead of one per 2 hours: a month of data backfills
            # in a second rather than a minute and a half (419 blocks).
            "--max-block-duration=8760h",
            str(source),
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"promtool could not backfill {source}:\n{result.stderr or result.stdout}"
        )


def start_prometheus(
    data_dir: Path, port: int, config_text: str = _CONFIG, features: Iterable[str] = ()
) -> subprocess.Popen:
    """Start Prometheus on 127.0.0.1:`port` over `data_dir`; return once it is ready.
    `config_text` replaces the configuration (which scrapes nothing), e.g. with
    `scrape_config(...)`; `features` are passed to --enable-feature (e.g.
    "exemplar-storage")."""
    prometheus, _ = require_prometheus()
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir.parent / f"{data_dir.name}.yml"
    config.write_text(config_text)
    log_path = data_dir.parent / f"{data_dir.name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={data_dir}",
                "--storage.tsdb.retention.time=100y",
                f"--web.listen-address=127.0.0.1:{port}",
                *(f"--enable-feature={feature}" for feature in features),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        waiting.until_serving(
            f"http://127.0.0.1:{port}/-/ready", what="Prometheus", process=process, log=log_path
        )
    except BaseException:  # not ready, or interrupted: leave no Prometheus behind
        _terminate(process)
        raise
    return process


def scrape_config(target: str, interval: str = "1s") -> str:
    """A configuration that scrapes `target` ("127.0.0.1:8000", its /metrics) every
    `interval`: for tests whose Prometheus reads a live process."""
    return (
        f"global:\n  scrape_interval: {interval}\n  evaluation_interval: 1h\n"
        f"scrape_configs:\n  - job_name: controlplane\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )


class PrometheusServer:
    """A Prometheus over one data directory; stop() and start() again at will."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.startup_seconds: float | None = None

    @classmethod
    @contextmanager
    def with_data(
        cls, root: Path, series: Mapping[str, Points], types: Mapping[str, str] | None = None
    ) -> Iterator[PrometheusServer]:
        """Backfill `series` under `root`, serve it, and stop when the block ends."""
        server = cls.backfilled(root, series, types)
        try:
            yield server
        finally:
            server.stop()

    @classmethod
    def backfilled(
        cls, root: Path, series: Mapping[str, Points], types: Mapping[str, str] | None = None
    ) -> PrometheusServer:
        data_dir = root / "data"
        if series:
            backfill(write_openmetrics(series, types), data_dir)
        server = cls(data_dir)
        server.start()
        return server

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        started = time.monotonic()
        self.process = start_prometheus(self.data_dir, self.port)
        self.startup_seconds = time.monotonic() - started

    def stop(self) -> None:
        if self.process is not None:
            _terminate(self.process)
            self.process = None


@pytest.fixture(scope="session")
def prometheus_factory(tmp_path_factory) -> Iterator:
    """make(series, types=None) -> a running PrometheusServer; all stop at session end."""
    require_prometheus()
    servers: list[PrometheusServer] = []

    def make(series: Mapping[str, Points], types: Mapping[str, str] | None = None):
        server = PrometheusServer.backfilled(tmp_path_factory.mktemp("prometheus"), series, types)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def _family(name: str, types: Mapping[str, str]) -> tuple[str, str]:
    for family, kind in types.items():
        if kind not in _FAMILY_SUFFIXES:
            raise ValueError(f"unknown metric type {kind!r} for {family!r}")
        if any(name == family + suffix for suffix in _FAMILY_SUFFIXES[kind]):
            return family, kind
    if name.endswith("_total"):
        return name.removesuffix("_total"), "counter"
    return name, "gauge"


def _seconds(timestamp: Timestamp) -> float:
    if isinstance(timestamp, datetime):
        return timestamp.timestamp()
    return float(timestamp)


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _terminate(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
