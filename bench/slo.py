"""SLOs at scale: evaluating 1,000 SLOs against a real Prometheus holding 30 days of
spiky traffic, exactly and through the recording rules, and GET /api/v1/slos/ over them.

The data. 30 days and 6 hours of one-minute scrapes from T0 (tests/integration/
prometheus.py), each target at an offset of its own within the minute: request counters
of 8 services by status code and a latency histogram of 4 of them, with a daily swing,
bursts of traffic, error incidents, one counter reset per series (a deploy) and, in the
last 40 minutes, an incident on svc-7 that pages. The recording rules' series,
`slo:good_events:increase5m` and `slo:total_events:increase5m` of each SLO, are
computed honestly: every distinct expression of the exported rule file
(controlplane/slo/rules.py) is sent as a range query, stepping by its group's 5m
interval at an offset of its own, to a Prometheus holding the raw data, and each answer
is written as the series of every SLO whose rule has that expression, with the rule's
labels, as Prometheus would have recorded them. Raw data and recordings are backfilled
together with promtool into blocks of 54 h, the largest a Prometheus compacts to with
the 30 days of retention a 30-day SLO needs, and served by a Prometheus held to that
block size, which therefore compacts nothing while the bench measures: a long range
reads a handful of blocks, as in production, not the 360 two-hour blocks promtool
makes by default.

1. Evaluation. 1,000 SLOs (ratio SLIs with good or bad counters, latency SLIs on the
   histogram; 30d, 28d, 7d and calendar-month windows; occurrences) evaluated at a fixed
   time in one process, through PostgreSQL and a real Redis broker (opened alerts nudge
   the outbox), three ways:
   - exact: SLO_FAST_PATH off, one query per SLO over the raw counters;
   - probe, no rules: SLO_FAST_PATH on (the default) but no recording of this
     organisation in Prometheus, as before anyone loads the exported rules: the
     coverage probe, then the exact query;
   - fast path: SLO_FAST_PATH on with the recordings present.
   In rounds of tasks.BATCH_SIZE SLOs (a worker's batch), each round evaluating its SLOs
   once each way, the order rotating, every time from the same state (evaluation rows,
   snapshots and the SLOs' alerts reset), so that the machine's slow spells fall on all
   three alike. Prometheus requests are counted from its own
   prometheus_http_requests_total, database queries with CaptureQueriesContext, query
   time by timing the client's query() calls. Budgets: the fast path against the exact
   path (it exists to be faster), the probe's cost where no rules are loaded against
   the exact path (every installation pays it by default), both as the median of the
   per-round ratios; and for the exact path the time spent waiting for Prometheus
   against the whole (what the engine adds, as bench/rule_evaluation.py measures it
   for rules). Printed beside them: how far the fast path's SLI and budget remaining
   are from the exact ones over the 1,000 SLOs (the recordings' own extrapolation on
   spiky traffic, scrapes and evaluations not aligned).
2. GET /api/v1/slos/ (Django test client, token auth, production settings) for an
   organisation of 1,000 evaluated SLOs, against the same endpoint for an organisation
   of 10, the two interleaved request by request: median and p95 over 200 requests
   each, the queries and SQL time of one request, and where a page's time goes (fetch,
   serializer, rendering). The list is paginated (API_PAGE_SIZE, 50 by default): reading
   all 1,000 is timed too. Goal (issue 12): p95 <= 50 ms.

`make bench` runs it with the others; alone:
DATABASE_URL=postgres://postgres@127.0.0.1:5432/<db> .venv/bin/python -m bench.slo
"""

from __future__ import annotations

import math
import os
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from bench import services
from bench.report import Budget

DATABASE = "bench_slo"
# Alerts nudge the outbox after commit: a Redis database of this bench's own, emptied.
BROKER_DB = 12
SLOS = 1_000
SMALL = 10  # the API baseline's organisation
ORGANIZATION, NO_RULES, SMALL_ORGANIZATION = "bench", "bench-no-rules", "bench-small"

# Where the data starts (tests/integration/prometheus.py's T0) and the evaluation time.
DATA_SPAN = timedelta(days=30, hours=6)
SCRAPE = 60  # seconds between samples
RECORDING_STEP = 300  # the events group's interval (rules.py)
GROUP_OFFSET = 97  # seconds past the 5 minutes when the events groups evaluate
BLOCK = 54 * 3600  # seconds: see the module's docstring
SERVICES = 8
LATENCY_SERVICES = 4
BUCKETS = ("0.1", "0.25", "0.5", "1.0", "+Inf")
# The share of requests at most each bucket bound, in quiet times.
QUIET_LATENCY = (0.80, 0.95, 0.99, 0.998, 1.0)
BUSY_LATENCY = (0.55, 0.80, 0.93, 0.985, 1.0)
# Latency SLOs: a bucket bound and the objective set for it.
LATENCY_OBJECTIVES = {"0.25": 90.0, "0.5": 98.5, "1.0": 99.5}
LATENCY_THRESHOLDS = tuple(LATENCY_OBJECTIVES)
PAGING_SERVICE = 7
PAGING_MINUTES = 40  # the last minutes of data, at PAGING_ERRORS on svc-7
PAGING_ERRORS = 0.2
SEED = 20260101

REQUESTS = 200
WARMUP = 20
PAGES_ROUNDS = 5
ANATOMY_ROUNDS = 50
PAGE = 50  # API_PAGE_SIZE's default
GOAL_P95_MS = 50.0
# The fast path must not be slower than the exact path (the reason it exists), and where
# no rules are loaded the probe may slow the evaluation by about a tenth at most.
GOAL_FAST_OVER_EXACT = 1.0
GOAL_PROBE_OVER_EXACT = 0.9
GOAL_QUERY_SHARE = 0.5  # as alerting.engine_share_of_evaluation


# --- pure: the data ------------------------------------------------------------------


def evaluation_time(t0: datetime) -> datetime:
    """Where the data ends: every SLO is evaluated at this fixed time."""
    return t0 + DATA_SPAN


def scrape_times(t0: float, minutes: int, service: int, seed: int = SEED) -> list[float]:
    """When the service's target is scraped: each minute at an offset of its own (as
    Prometheus spreads targets), give or take a few milliseconds."""
    rnd = random.Random(seed * 31 + service)
    # 1 s to 59 s: never within the jitter of a whole minute, where the blocks part.
    offset = 1 + (service * 7.3) % (SCRAPE - 2)
    return [t0 + m * SCRAPE + offset + rnd.uniform(-0.02, 0.02) for m in range(minutes)]


def raw_series(t0: float, seed: int = SEED) -> dict[str, tuple[int, list[int]]]:
    """The service and the cumulative counts per minute (index m is scraped at
    scrape_times(...)[m]) of every raw series, keyed 'name{labels}' (labels in sorted
    order, OpenMetrics spelling)."""
    rnd = random.Random(seed)
    minutes = int(DATA_SPAN.total_seconds()) // SCRAPE + 1
    series: dict[str, tuple[int, list[int]]] = {}
    for k in range(SERVICES):
        base = 200 + 150 * k  # requests a minute
        phase = rnd.random()
        quiet_errors = 0.0002 * (1 + k % 4)
        reset_at = rnd.randrange(minutes // 4, minutes * 3 // 4)
        burst_left = burst = incident_left = 0
        incident = 0.0
        ok: list[int] = []
        bad: list[int] = []
        latency: list[list[int]] = [[] for _ in BUCKETS]
        ok_total = bad_total = 0
        bucket_totals = [0] * len(BUCKETS)
        for m in range(minutes):
            if m == reset_at:  # a deploy restarts the process: counters from zero
                ok_total = bad_total = 0
                bucket_totals = [0] * len(BUCKETS)
            if burst_left == 0 and rnd.random() < 0.004:
                burst_left, burst = rnd.randint(1, 10), rnd.uniform(3, 20)
            if incident_left == 0 and rnd.random() < 0.00005:
                incident_left, incident = rnd.randint(5, 60), rnd.uniform(0.01, 0.3)
            rate = base * (1 + 0.6 * math.sin(2 * math.pi * (m / 1440 + phase)))
            if burst_left:
                rate *= burst
                burst_left -= 1
            requests = max(0, round(rnd.gauss(rate, math.sqrt(rate))))
            share = quiet_errors
            if incident_left:
                share = incident
                incident_left -= 1
            if k == PAGING_SERVICE and m >= minutes - PAGING_MINUTES:
                share = PAGING_ERRORS
            mean = requests * share
            errors = min(requests, max(0, round(rnd.gauss(mean, math.sqrt(mean + 1e-9)))))
            if m > 0:  # counters start at zero at the first scrape
                ok_total += requests - errors
                bad_total += errors
            ok.append(ok_total)
            bad.append(bad_total)
            if k < LATENCY_SERVICES:
                shares = BUSY_LATENCY if (burst_left or incident_left) else QUIET_LATENCY
                below = 0
                for i, fraction in enumerate(shares):
                    # Cumulative buckets: each at least the one before, +Inf all of them.
                    target = requests if i == len(shares) - 1 else round(requests * fraction)
                    below = max(below, min(requests, target))
                    if m > 0:
                        bucket_totals[i] += below
                    latency[i].append(bucket_totals[i])
        service = f'service="svc-{k}"'
        series[f'http_requests_total{{code="200",{service}}}'] = (k, ok)
        series[f'http_requests_total{{code="500",{service}}}'] = (k, bad)
        if k < LATENCY_SERVICES:
            for le, counts in zip(BUCKETS, latency, strict=True):
                series[f'http_request_duration_seconds_bucket{{le="{le}",{service}}}'] = (k, counts)
            series[f"http_request_duration_seconds_count{{{service}}}"] = (k, latency[-1])
    return series


EOF = "# EOF\n"
RAW_FAMILIES = (
    ("http_requests", "counter", "http_requests_total"),
    ("http_request_duration_seconds", "histogram", "http_request_duration_seconds_"),
)


def raw_openmetrics(
    series: dict[str, tuple[int, list[int]]],
    times: dict[int, list[float]],
    start: int,
    stop: int,
) -> str:
    """The samples of minutes [start, stop) as OpenMetrics families, without # EOF;
    `times`: each service's scrape_times."""
    out = []
    for family, kind, prefix in RAW_FAMILIES:
        out.append(f"# TYPE {family} {kind}\n")
        for key, (service, counts) in series.items():
            if key.startswith(prefix):
                at = times[service]
                out.append("".join(f"{key} {counts[m]} {at[m]:.3f}\n" for m in range(start, stop)))
    return "".join(out)


def slo_specs(count: int) -> list[dict]:
    """Field values of `count` SLOs: 4 in 5 ratio SLIs (good or bad counter), 1 in 5
    latency SLIs; mostly 30-day windows, some 28d, 7d and calendar months. Services,
    objectives and good or bad counters vary independently of each other."""
    objectives = (99.9, 99.5, 99.0, 99.95)
    windows = ("30d",) * 7 + ("28d", "7d", "month")
    specs = []
    for n in range(count):
        spec: dict = {
            "slug": f"slo-{n:04d}",
            "name": f"SLO {n}",
            "window": windows[n % len(windows)],
            "time_zone": "America/New_York" if windows[n % len(windows)] == "month" else "UTC",
            "min_events": 1000,
        }
        if n % 5 == 4:
            k = n % LATENCY_SERVICES
            threshold = LATENCY_THRESHOLDS[(n // 5) % len(LATENCY_THRESHOLDS)]
            spec.update(
                service=k,
                kind="latency",
                metric="http_request_duration_seconds",
                selector=f'service="svc-{k}"',
                threshold=float(threshold),
                bucket_le=threshold,
                objective=LATENCY_OBJECTIVES[threshold],
            )
        else:
            k = n % SERVICES
            total = f'http_requests_total{{service="svc-{k}"}}'
            spec.update(
                service=k,
                kind="ratio",
                total=total,
                objective=objectives[(n // SERVICES) % len(objectives)],
            )
            if (n // SERVICES) % 2:
                spec["good"] = f'http_requests_total{{service="svc-{k}",code="200"}}'
            else:
                spec["bad"] = f'http_requests_total{{service="svc-{k}",code="500"}}'
        specs.append(spec)
    return specs


def recorded_openmetrics(
    recordings: dict[str, dict[str, str]],
    values: dict[str, list[tuple[float, float]]],
    start: float,
    stop: float,
) -> str:
    """The recording rules' samples in [start, stop) as OpenMetrics families, without
    # EOF. `recordings`: record name -> series key -> the expression it records;
    `values`: expression -> its (time, value) points."""
    out = []
    suffixes: dict[str, list[str]] = {}
    for expr, points in values.items():
        suffixes[expr] = [f" {value!r} {at:.3f}\n" for at, value in points if start <= at < stop]
    for record, keyed in recordings.items():
        out.append(f"# TYPE {record} gauge\n")
        for key, expr in keyed.items():
            lines = suffixes[expr]
            if lines:
                # key + " v t\n" for each point, joined in C.
                out.append(key + key.join(lines))
    return "".join(out)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def statement_kinds(sql: list[str]) -> Counter:
    """How many statements of each kind (SELECT, INSERT, SAVEPOINT...)."""
    kinds: Counter = Counter()
    for text in sql:
        word = text.lstrip().split(None, 1)[0].upper() if text.strip() else "?"
        kinds[word] += 1
    return kinds


# --- the edges ---------------------------------------------------------------------


def run() -> list[Budget]:
    missing = services.missing_services()
    if missing:
        print(f"  skipped: needs {', '.join(missing)}")
        return []
    services.setup_django()
    from tests.integration.prometheus import T0

    at = evaluation_time(T0)
    print(f"  load average at the start: {_load()}")
    budgets: list[Budget] = []
    with (
        services.bench_database(DATABASE) as database,
        tempfile.TemporaryDirectory(prefix="bench-slo-") as tmp,
    ):
        services.fresh_broker(database, BROKER_DB)
        started = time.perf_counter()
        specs = slo_specs(SLOS)
        with _prometheus(Path(tmp), T0, specs) as url:
            print(f"  data backfilled and served in {time.perf_counter() - started:.1f} s")
            ids = _seed(url, ORGANIZATION, specs)
            budgets += _evaluation(ids, url, at)
            for batch in _batches(_seed(url, SMALL_ORGANIZATION, slo_specs(SMALL))):
                _evaluate_batch(batch, at)
            budgets += _api()
        _empty_broker()
    print(f"  load average at the end: {_load()}")
    return budgets


def _load() -> str:
    """The machine's load (1, 5, 15 minutes): figures taken on a busy machine say so."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


@contextmanager
def _prometheus(root: Path, t0: datetime, specs: list[dict]) -> Iterator[str]:
    """Backfill the raw data, compute the recordings on a Prometheus holding it, then
    serve raw data and recordings together from one set of blocks."""
    from controlplane.promql.client import PrometheusClient

    began = time.perf_counter()
    start = t0.timestamp()
    series = raw_series(start)
    minutes = len(next(iter(series.values()))[1])
    times = {k: scrape_times(start, minutes, k) for k in range(SERVICES)}
    ranges = _ranges(start, minutes)
    raw_dir = root / "raw-om"
    raw_dir.mkdir()
    for n, (first, stop) in enumerate(ranges):
        (raw_dir / f"{n:03d}.om").write_text(raw_openmetrics(series, times, first, stop) + EOF)
    del series, times
    _backfill([raw_dir / f"{n:03d}.om" for n in range(len(ranges))], root / "raw-data", keep=True)
    generated = time.perf_counter()
    recordings, exprs = _recording_rules(specs, evaluation_time(t0))
    with _serve(root / "raw-data", root / "raw-prometheus.log") as raw_url:
        client = PrometheusClient(raw_url, timeout=30)
        # The group's evaluations, at an offset of its own as Prometheus gives each group.
        first = start + RECORDING_STEP + GROUP_OFFSET
        values = {}
        for expr in exprs:
            answer = client.query_range(expr, first, evaluation_time(t0), RECORDING_STEP)
            values[expr] = list(answer[0].points) if answer else []
    queried = time.perf_counter()
    paths = []
    for n, (first, stop) in enumerate(ranges):
        path = root / f"all-{n:03d}.om"
        raw = (raw_dir / f"{n:03d}.om").read_text().removesuffix(EOF)
        recorded = recorded_openmetrics(
            recordings, values, start + first * SCRAPE, start + stop * SCRAPE
        )
        path.write_text(raw + recorded + EOF)
        (raw_dir / f"{n:03d}.om").unlink()
        paths.append(path)
    _backfill(paths, root / "data", keep=False)
    recorded_samples = sum(len(v) for v in values.values())
    print(
        f"  raw data: {len(ranges)} blocks in {generated - began:.1f} s; "
        f"{len(exprs)} distinct rule expressions queried over {DATA_SPAN.days} days in "
        f"{queried - generated:.1f} s; {sum(len(k) for k in recordings.values()):,} recorded "
        f"series backfilled in {time.perf_counter() - queried:.1f} s "
        f"({recorded_samples:,} points for the distinct expressions)"
    )
    with _serve(root / "data", root / "prometheus.log") as url:
        yield url


def _ranges(start: float, minutes: int) -> list[tuple[int, int]]:
    """Minute index ranges [first, stop) falling in the same BLOCK-aligned stretch."""
    ranges = []
    first = 0
    while first < minutes:
        edge = (int(start + first * SCRAPE) // BLOCK + 1) * BLOCK
        stop = min(minutes, math.ceil((edge - start) / SCRAPE))
        ranges.append((first, stop))
        first = stop
    return ranges


def _backfill(paths: list[Path], data_dir: Path, keep: bool) -> None:
    """promtool, two files at a time, blocks up to BLOCK long."""
    promtool = shutil.which("promtool")
    assert promtool is not None

    def one(path: Path) -> None:
        result = subprocess.run(
            [
                promtool,
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "--quiet",
                f"--max-block-duration={BLOCK // 3600}h",
                str(path),
                str(data_dir),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"promtool could not backfill {path}:\n{result.stderr[-2000:]}")
        if not keep:
            path.unlink()

    data_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, paths))


@contextmanager
def _serve(data_dir: Path, log: Path) -> Iterator[str]:
    from tests.services import free_port

    prometheus = shutil.which("prometheus")
    assert prometheus is not None
    config = data_dir.parent / f"{data_dir.name}.yml"
    config.write_text("global:\n  scrape_interval: 1h\n  evaluation_interval: 1h\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = services.start_server(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={data_dir}",
            "--storage.tsdb.retention.time=100y",
            # Hidden flag: the largest block it compacts to, so that it leaves ours alone.
            f"--storage.tsdb.max-block-duration={BLOCK // 3600}h",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        f"{url}/-/ready",
        "Prometheus",
        log,
    )
    try:
        yield url
    finally:
        services.stop([process])


def _recording_rules(
    specs: list[dict], at: datetime
) -> tuple[dict[str, dict[str, str]], list[str]]:
    """From the exported rule file of the SLOs: record name -> OpenMetrics series key ->
    expression, and the distinct expressions."""
    from controlplane.slo import rules
    from tests.integration.prometheus import series_key

    definitions = [(ORGANIZATION, _unsaved(spec).definition()) for spec in specs]
    recordings: dict[str, dict[str, str]] = {}
    for group in rules.rule_groups(definitions, at)["groups"]:
        if not group["name"].endswith(":events"):
            continue
        assert group["interval"] == f"{RECORDING_STEP // 60}m", group["interval"]
        for rule in group["rules"]:
            key = series_key(rule["record"], rule["labels"])
            recordings.setdefault(rule["record"], {})[key] = rule["expr"]
    exprs = sorted({expr for keyed in recordings.values() for expr in keyed.values()})
    return recordings, exprs


def _unsaved(spec: dict):
    from controlplane.slo.models import SLO

    return SLO(**{k: v for k, v in spec.items() if k != "service"})


def _seed(url: str, slug: str, specs: list[dict]) -> list[int]:
    """An organisation `slug` reading `url`, its services and these SLOs; their ids."""
    from controlplane.catalog.models import MetricSource, Organization, Service
    from controlplane.slo.evaluation import ensure_evaluations
    from controlplane.slo.models import SLO

    org = Organization.objects.create(slug=slug, name=f"Bench {slug}")
    source = MetricSource.objects.create(organization=org, name="prometheus", url=url)
    by_number = {
        k: Service.objects.create(organization=org, slug=f"svc-{k}", name=f"Service {k}")
        for k in range(SERVICES)
    }
    SLO.objects.bulk_create(
        SLO(
            organization=org,
            source=source,
            service=by_number[spec["service"]],
            **{k: v for k, v in spec.items() if k != "service"},
        )
        for spec in specs
    )
    ensure_evaluations()  # bulk_create skips the recorder that makes them
    return list(SLO.objects.filter(organization=org).order_by("pk").values_list("pk", flat=True))


def _batches(ids: list[int]) -> Iterator[list[int]]:
    from controlplane.slo.tasks import BATCH_SIZE

    for i in range(0, len(ids), BATCH_SIZE):
        yield ids[i : i + BATCH_SIZE]


@dataclass(frozen=True)
class Variant:
    name: str
    fast_path: bool  # settings.SLO_FAST_PATH
    recordings: bool  # whether Prometheus holds this organisation's recordings


VARIANTS = (
    Variant("exact", fast_path=False, recordings=True),
    Variant("probe, no rules", fast_path=True, recordings=False),
    Variant("fast path", fast_path=True, recordings=True),
)


@dataclass
class Tally:
    """One variant's figures, summed over the batches."""

    seconds: float = 0.0
    query_seconds: float = 0.0
    prometheus_requests: int = 0
    db_queries: int = 0
    kinds: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    fast_path: int = 0
    queries: Counter = field(default_factory=Counter)  # _timed_queries' tallies
    # slo id -> (sli, budget remaining)
    results: dict[int, tuple[float | None, float | None]] = field(default_factory=dict)
    rounds: list[float] = field(default_factory=list)  # seconds per batch, in order

    def per_slo(self, count: int) -> str:
        return (
            f"{self.seconds:6.2f} s ({count / self.seconds:,.0f} SLOs/s), "
            f"{self.prometheus_requests / count:.2f} Prometheus queries and "
            f"{self.db_queries / count:.1f} database queries per SLO, "
            f"{self.query_seconds / self.seconds:.0%} of the time waiting for Prometheus"
        )

    def query_times(self, count: int) -> str:
        parts = [
            f"{kind} {self.queries[f'{kind} seconds'] / self.queries[kind] * 1000:.1f} ms"
            for kind in ("probe", "measurement")
            if self.queries[kind]
        ]
        engine = (self.seconds - self.query_seconds) / count * 1000
        database = self.queries["database seconds"] / count * 1000
        return (
            f"a query takes: {', '.join(parts)}; the rest, {engine:.1f} ms an SLO, of which "
            f"{database:.1f} ms in database statements"
        )


def paired(baseline: list[float], measured: list[float]) -> float:
    """The median over rounds of baseline seconds / measured seconds (a speed ratio)."""
    return statistics.median(b / m for b, m in zip(baseline, measured, strict=True))


def _evaluation(ids: list[int], url: str, at: datetime) -> list[Budget]:
    """Batch by batch, each variant in turn (the order rotating), so that the machine's
    slow spells fall on all three alike."""
    tallies = {variant.name: Tally() for variant in VARIANTS}
    for n, batch in enumerate(_batches(ids)):
        shift = n % len(VARIANTS)
        for variant in VARIANTS[shift:] + VARIANTS[:shift]:
            _run(variant, batch, url, at, tallies[variant.name])
    count = len(ids)
    for name, tally in tallies.items():
        kinds = ", ".join(f"{kind} {n / count:.1f}" for kind, n in tally.kinds.most_common())
        statuses = ", ".join(f"{status} {n}" for status, n in tally.statuses.most_common())
        print(f"  {count:,} SLOs, {name:>15}: {tally.per_slo(count)}")
        print(f"  {'':>29}{tally.query_times(count)}")
        print(f"  {'':>29}database queries per SLO by kind: {kinds}")
        print(f"  {'':>29}statuses: {statuses}; read the recordings: {tally.fast_path}")
    exact, probe, fast = (tallies[variant.name] for variant in VARIANTS)
    if fast.fast_path != count or exact.fast_path or probe.fast_path:
        # The comparison would be of nothing: the recordings, the probe or covers() broke.
        raise RuntimeError(
            f"the fast path was taken by {exact.fast_path} / {probe.fast_path} / "
            f"{fast.fast_path} of {count} SLOs (exact / probe, no rules / fast path): "
            f"expected 0 / 0 / {count}"
        )
    sli_gaps, remaining_gaps = _gaps(exact.results, fast.results)
    worst = max(remaining_gaps, key=remaining_gaps.__getitem__)
    largest = _described(worst, exact.results[worst][1])
    print(
        f"  fast path against exact over the {count:,} SLOs, |difference| largest / median: "
        f"SLI {max(sli_gaps.values()):.3g} / {statistics.median(sli_gaps.values()):.3g}, "
        f"budget remaining {remaining_gaps[worst]:.3g} / "
        f"{statistics.median(remaining_gaps.values()):.3g} (largest: {largest})"
    )
    rounds = f"median of {len(exact.rounds)} rounds of {len(ids) // len(exact.rounds)} SLOs"
    return [
        Budget(
            f"slo.evaluation_fast_path ({count:,} SLOs, 1 process: SLOs/s fast path / exact)",
            measured=count / fast.seconds,
            baseline=count / exact.seconds,
            unit="SLOs/s",
            goal=GOAL_FAST_OVER_EXACT,
            note=(
                f"{fast.seconds:.2f} s vs {exact.seconds:.2f} s; "
                f"{fast.prometheus_requests / count:.2f} vs "
                f"{exact.prometheus_requests / count:.2f} queries per SLO; {rounds}"
            ),
            paired=paired(exact.rounds, fast.rounds),
        ),
        Budget(
            f"slo.evaluation_probe_without_rules ({count:,} SLOs: SLOs/s probe + exact / exact)",
            measured=count / probe.seconds,
            baseline=count / exact.seconds,
            unit="SLOs/s",
            goal=GOAL_PROBE_OVER_EXACT,
            note=(
                f"{probe.seconds:.2f} s, {probe.prometheus_requests / count:.2f} queries per "
                f"SLO; {rounds}"
            ),
            paired=paired(exact.rounds, probe.rounds),
        ),
        Budget(
            "slo.evaluation_query_share (exact path: query time / total time)",
            measured=exact.query_seconds,
            baseline=exact.seconds,
            unit="s",
            goal=GOAL_QUERY_SHARE,
            note=(
                f"engine {(exact.seconds - exact.query_seconds) / count * 1000:.2f} ms per SLO, "
                f"{exact.db_queries / count:.1f} database queries per SLO"
            ),
        ),
    ]


def _gaps(
    exact: dict[int, tuple[float | None, float | None]],
    fast: dict[int, tuple[float | None, float | None]],
) -> tuple[dict[int, float], dict[int, float]]:
    """|exact - fast| of the SLI and of the budget remaining, by SLO id (0 for an SLO
    that has no figure, which the statuses show)."""
    sli: dict[int, float] = {}
    remaining: dict[int, float] = {}
    for pk, (a_sli, a_remaining) in exact.items():
        b_sli, b_remaining = fast.get(pk, (None, None))
        sli[pk] = abs(a_sli - b_sli) if a_sli is not None and b_sli is not None else 0.0
        both = a_remaining is not None and b_remaining is not None
        remaining[pk] = abs(a_remaining - b_remaining) if both else 0.0
    return sli, remaining


def _described(pk: int, remaining: float | None) -> str:
    from controlplane.slo.models import SLO

    slo = SLO.objects.get(pk=pk)
    what = slo.total or f"{slo.metric} <= {slo.bucket_le}"
    exact = "none" if remaining is None else f"{remaining:.4g}"
    return f"{slo.slug}, {slo.objective:g}% over {slo.window}, {what}, exactly {exact} remaining"


def _run(variant: Variant, batch: list[int], url: str, at: datetime, tally: Tally) -> None:
    """Evaluate one batch from scratch as `variant` and add its figures to `tally`."""
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext, override_settings

    from controlplane.catalog.models import Organization
    from controlplane.slo.models import SLOEvaluation

    _reset(batch)
    if not variant.recordings:
        # The recordings carry the organisation's slug: under another, the SLOs have none.
        Organization.objects.filter(slug=ORGANIZATION).update(slug=NO_RULES)
    try:
        requests_before = _prometheus_requests(url)
        # Django's log keeps the last 9,000 queries, and CaptureQueriesContext counts by
        # its length: emptied first, it counts them all.
        reset_queries()
        with (
            override_settings(SLO_FAST_PATH=variant.fast_path),
            _timed_queries() as spent,
            CaptureQueriesContext(connection) as captured,
            connection.execute_wrapper(_timed_statement(spent)),
        ):
            started = time.perf_counter()
            _evaluate_batch(batch, at)
            seconds = time.perf_counter() - started
        requests = _prometheus_requests(url) - requests_before
    finally:
        Organization.objects.filter(slug=NO_RULES).update(slug=ORGANIZATION)
    rows = SLOEvaluation.objects.filter(slo_id__in=batch)
    tally.seconds += seconds
    tally.rounds.append(seconds)
    tally.query_seconds += spent["probe seconds"] + spent["measurement seconds"]
    tally.queries += spent
    tally.prometheus_requests += requests
    tally.db_queries += len(captured)
    tally.kinds += statement_kinds([q["sql"] for q in captured.captured_queries])
    tally.statuses += Counter(rows.values_list("status", flat=True))
    tally.fast_path += rows.filter(fast_path=True).count()
    tally.results.update(
        (pk, (sli, remaining))
        for pk, sli, remaining in rows.values_list("slo_id", "sli", "budget_remaining")
    )


def _evaluate_batch(batch: list[int], at: datetime) -> None:
    from controlplane.slo.evaluation import evaluate_claimed

    outcomes = evaluate_claimed(batch, at=at)
    failed = [o for o in outcomes if o.result != "ok"]
    if failed:
        raise RuntimeError(f"{len(failed)} SLO evaluations failed, e.g. {failed[0]}")


def _reset(ids: list[int]) -> None:
    """Every run starts where the first did: nothing evaluated, no history, no alerts."""
    from controlplane.alerting.models import Alert
    from controlplane.slo.models import SLOEvaluation, SLOSnapshot

    Alert.objects.filter(slo_id__in=ids).delete()
    SLOSnapshot.objects.filter(slo_id__in=ids).delete()
    SLOEvaluation.objects.filter(slo_id__in=ids).update(
        status=SLOEvaluation.Status.PENDING,
        sli=None,
        budget_remaining=None,
        burn_rates={},
        events=None,
        time_to_exhaustion=None,
        window_start=None,
        window_end=None,
        fast_path=False,
        last_error="",
        evaluated_at=None,
        trace_id="",
        claimed_until=None,
        claim_token="",
    )


def _timed_statement(spent: Counter):
    """An execute_wrapper adding each statement's time (the round trip included) to
    spent["database seconds"]."""

    def wrapper(execute, sql, params, many, context):
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent["database seconds"] += time.perf_counter() - began

    return wrapper


@contextmanager
def _timed_queries() -> Iterator[Counter]:
    """The seconds spent in PrometheusClient.query while the block runs, and the
    queries made, by kind: the fast path's coverage probe, or the measurement."""
    from controlplane.promql.client import PrometheusClient
    from controlplane.slo.queries import TOTAL_EVENTS

    original = PrometheusClient.query
    spent: Counter = Counter()
    probe = f"sum(count_over_time({TOTAL_EVENTS}{{"

    def query(self, expr, at=None):
        kind = "probe" if expr.startswith(probe) else "measurement"
        began = time.perf_counter()
        try:
            return original(self, expr, at)
        finally:
            spent[f"{kind} seconds"] += time.perf_counter() - began
            spent[kind] += 1

    PrometheusClient.query = query  # type: ignore[method-assign]
    try:
        yield spent
    finally:
        PrometheusClient.query = original  # type: ignore[method-assign]


_REQUESTS_TOTAL = re.compile(
    r'^prometheus_http_requests_total\{[^}]*handler="/api/v1/[^"]*"[^}]*\}\s+(\S+)', re.M
)


def _prometheus_requests(url: str) -> int:
    """Prometheus' own count of the API requests it has answered."""
    import requests

    text = requests.get(f"{url}/metrics", timeout=10).text
    return round(sum(float(value) for value in _REQUESTS_TOTAL.findall(text)))


def _api() -> list[Budget]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from controlplane.catalog.models import ApiToken, Organization

    clients = {}
    for slug in (ORGANIZATION, SMALL_ORGANIZATION):
        _, token = ApiToken.issue(Organization.objects.get(slug=slug), ApiToken.Scope.READ)
        clients[slug] = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="localhost")
    path = "/api/v1/slos/"

    def get(client: Client, url: str = path) -> float:
        began = time.perf_counter()
        response = client.get(url)
        took = time.perf_counter() - began
        assert response.status_code == 200, response.content[:500]
        return took * 1000

    for _ in range(WARMUP):
        for client in clients.values():
            get(client)
    timings: dict[str, list[float]] = {slug: [] for slug in clients}
    for _ in range(REQUESTS):
        for slug, client in clients.items():
            timings[slug].append(get(client))
    anatomy = {}
    for slug, client in clients.items():
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path)
        body = response.json()
        anatomy[slug] = (
            len(captured),
            sum(float(q["time"]) for q in captured.captured_queries) * 1000,
            len(body["results"]),
            body["count"],
            len(response.content),
        )
    big, small = timings[ORGANIZATION], timings[SMALL_ORGANIZATION]
    p50, p95 = statistics.median(big), percentile(big, 0.95)
    s50, s95 = statistics.median(small), percentile(small, 0.95)
    for slug, label in ((ORGANIZATION, f"{SLOS:,}"), (SMALL_ORGANIZATION, f"{SMALL}")):
        queries, sql_ms, rows, count, size = anatomy[slug]
        data = timings[slug]
        print(
            f"  GET {path} ({label} SLOs, {rows} on the page of {count}, {size:,} bytes): "
            f"median {statistics.median(data):.1f} ms, p95 {percentile(data, 0.95):.1f} ms "
            f"over {REQUESTS}; {queries} queries, {sql_ms:.1f} ms of SQL"
        )
    pages = math.ceil(SLOS / anatomy[ORGANIZATION][2])
    whole = []
    client = clients[ORGANIZATION]
    for _ in range(PAGES_ROUNDS):
        began = time.perf_counter()
        for page in range(1, pages + 1):
            get(client, f"{path}?page={page}")
        whole.append((time.perf_counter() - began) * 1000)
    print(
        f"  all {SLOS:,} SLOs, {pages} pages one after the other: median "
        f"{statistics.median(whole):.0f} ms over {PAGES_ROUNDS} rounds"
    )
    _anatomy(clients)
    met = "met" if p95 <= GOAL_P95_MS else "NOT met"
    print(f"  goal p95 <= {GOAL_P95_MS:g} ms with {SLOS:,} SLOs: {met} ({p95:.1f} ms)")
    return [
        Budget(
            f"api.slos_list_p95 ({GOAL_P95_MS:g} ms goal / p95 of GET /api/v1/slos/, "
            f"{SLOS:,} SLOs)",
            measured=GOAL_P95_MS,
            baseline=p95,
            unit="ms",
            goal=1.0,
            note=(
                f"median {p50:.1f} ms; {SMALL} SLOs: median {s50:.1f} ms, p95 {s95:.1f} ms, "
                f"p95 ratio {p95 / s95:.2f}"
            ),
        )
    ]


def _anatomy(clients: dict) -> None:
    """Where a page's time goes: the page's SLOs fetched as the view fetches them, the
    serializer over them, JSON rendering; what the request takes beyond these is the
    stack (authentication, middleware, observability, the pagination's count)."""
    from django.test import RequestFactory
    from rest_framework.renderers import JSONRenderer

    from controlplane.api.slos import SLOSerializer, SLOViewSet
    from controlplane.catalog.models import Organization

    request = RequestFactory().get("/api/v1/slos/", HTTP_HOST="localhost")
    for slug in clients:
        org = Organization.objects.get(slug=slug)
        fetch, serialize, render = [], [], []
        for _ in range(ANATOMY_ROUNDS):
            began = time.perf_counter()
            rows = list(SLOViewSet.queryset.filter(organization=org)[:PAGE])
            fetched = time.perf_counter()
            data = SLOSerializer(rows, many=True, context={"request": request}).data
            serialized = time.perf_counter()
            JSONRenderer().render(data)
            rendered = time.perf_counter()
            fetch.append((fetched - began) * 1000)
            serialize.append((serialized - fetched) * 1000)
            render.append((rendered - serialized) * 1000)
        parts = (statistics.median(fetch), statistics.median(serialize), statistics.median(render))
        print(
            f"  {len(rows)} SLOs of {slug}, median of {ANATOMY_ROUNDS}: fetched (SQL and models) "
            f"{parts[0]:.1f} ms, serialized {parts[1]:.1f} ms "
            f"({parts[1] / len(rows) * 1000:.0f} us an SLO), rendered {parts[2]:.1f} ms"
        )


def _empty_broker() -> None:
    import redis

    redis.Redis.from_url(
        f"redis://{services.REDIS_HOST}:{services.REDIS_PORT}/{BROKER_DB}"
    ).flushdb()


if __name__ == "__main__":
    import bench.__main__  # noqa: F401  (the benches' environment)

    lines = run()
    print()
    for budget in lines:
        print(budget.line())
    raise SystemExit(0 if all(b.met for b in lines) else 1)
