"""What the observability package costs a request and a job, side by side with the
hand-assembled standard stack, on the minimal project in bench/minimal/.

Two measurements, each in fresh processes per variant, in interleaved rounds so that
machine noise hits every variant alike:

- **in process**: the variant's WSGI application called directly, no server and no
  socket, so the figure is the instrumentation's own cost. Per request time is the
  best of several blocks (the least-disturbed run of the same code); the added
  microseconds are a variant's figure minus bare Django's from the same round, and
  the median over the rounds is printed with the range.
- **under load**: gunicorn, 2 sync workers per variant, driven by `wrk` (Debian
  package `wrk`) with 16 connections on 2 threads, on the same 2-core machine. The
  three servers run at once and take turns, a few seconds of load each per round:
  requests per second of each variant divided by bare Django's in the same round,
  median over rounds. wrk shares the cores with the server, as a sidecar would.

Every variant runs with the same gunicorn hooks (bench/minimal/gunicorn_config.py):
the heap freeze the package recommends helps bare Django too, so it is no part of
the difference measured.

Also the `job_run` helper: a run of an empty job through it against a bare call of
the same function, in the same process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from wsgiref.util import setup_testing_defaults

from bench.report import Budget, Overhead

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("bare", "standard", "package")
VIEWS = {"json": "/json/", "query": "/query/"}
ROUNDS = 5
BLOCKS, BLOCK_REQUESTS, WARMUP = 7, 500, 500
JOB_BLOCKS, JOB_CALLS = 7, 2000
LOAD_ROUNDS, LOAD_SECONDS, LOAD_CONNECTIONS, LOAD_THREADS, WORKERS = 6, 3, 16, 2, 2
# The goals are for the small JSON view, where the package's cost is least hidden; the
# one-query view is printed beside them (its query span and database counters are
# what it adds).
GOAL_ADDED_MICROSECONDS = 150.0
GOAL_THROUGHPUT_RATIO = 0.85
GOAL_JOB_ADDED_MICROSECONDS = 100.0


def _best_per_call(call, blocks: int, per_block: int) -> float:
    """Microseconds per call of the fastest of `blocks` blocks."""
    best = float("inf")
    for _ in range(blocks):
        started = time.perf_counter()
        for _ in range(per_block):
            call()
        best = min(best, (time.perf_counter() - started) / per_block)
    return best * 1e6


def measure_in_process(variant: str) -> dict[str, float]:
    """Run in a fresh process whose BENCH_VARIANT is `variant`."""
    from bench.minimal.wsgi import application
    from observability.gunicorn import freeze_loaded_heap

    # As gunicorn's post_worker_init does under load (bench/minimal/gunicorn_config.py).
    freeze_loaded_heap()
    base: dict = {"HTTP_HOST": "localhost", "REMOTE_ADDR": "127.0.0.1"}
    setup_testing_defaults(base)

    def request(path: str) -> None:
        environ = dict(base, PATH_INFO=path)
        statuses = []
        body = application(environ, lambda status, headers: statuses.append(status))
        b"".join(body)
        body.close()
        if not statuses[0].startswith("200"):
            raise RuntimeError(f"{variant} {path} answered {statuses[0]}")

    figures: dict[str, float] = {}
    for name, path in VIEWS.items():
        for _ in range(WARMUP):
            request(path)
        figures[name] = _best_per_call(lambda p=path: request(p), BLOCKS, BLOCK_REQUESTS)
    if variant == "package":
        figures.update(_job_figures())
    return figures


def _job_figures() -> dict[str, float]:
    from observability.jobs import job_run

    def work() -> int:
        return 1

    def through_helper() -> None:
        with job_run("bench.job"):
            work()

    for _ in range(WARMUP):
        through_helper()
    bare = _best_per_call(work, JOB_BLOCKS, JOB_CALLS)
    helped = _best_per_call(through_helper, JOB_BLOCKS, JOB_CALLS)
    return {"job_bare": bare, "job_run": helped}


def _child_env(variant: str, var_dir: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.minimal.settings",
        "BENCH_VARIANT": variant,
        "BENCH_VAR_DIR": var_dir,
        "PROMETHEUS_MULTIPROC_DIR": str(Path(var_dir) / "metrics"),
    }
    Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir()
    # The OTel SDK reads these itself; the bench measures the documented defaults.
    for name in ("OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_SDK_DISABLED"):
        env.pop(name, None)
    return env


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith("postgres") else ""


def run_in_process(variant: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as var:
        env = _child_env(variant, var)
        env["BENCH_DATABASE_URL"] = _database_url()
        out = subprocess.run(
            [sys.executable, "-m", "bench.observability_overhead", "--child", variant],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if out.returncode:
            raise RuntimeError(f"in-process bench of {variant} failed:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])


_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")


def _wrk(url: str, seconds: int) -> float:
    out = subprocess.run(
        [
            "wrk",
            f"-t{LOAD_THREADS}",
            f"-c{LOAD_CONNECTIONS}",
            f"-d{seconds}s",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    failed = _NON_2XX.search(out)
    if failed:
        raise RuntimeError(f"{url}: {failed.group(1)} responses were not 2xx under load")
    found = _RPS.search(out)
    if found is None:
        raise RuntimeError(f"wrk printed no rate for {url}:\n{out}")
    return float(found.group(1))


@contextmanager
def serving(variant: str) -> Iterator[str]:
    """gunicorn serving one variant; yields its base URL once every view answers."""
    from tests.services import free_port
    from tests.waiting import until_serving

    with tempfile.TemporaryDirectory() as var:
        env = _child_env(variant, var)
        env["BENCH_DATABASE_URL"] = _database_url()
        port = free_port()
        log = Path(var) / "gunicorn.log"
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "bench.minimal.wsgi:application",
                f"--workers={WORKERS}",
                "--worker-class=sync",
                f"--bind=127.0.0.1:{port}",
                "--log-level=warning",
                "--config=python:bench.minimal.gunicorn_config",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for path in VIEWS.values():
                until_serving(
                    f"{base}{path}", what=f"gunicorn ({variant})", process=server, log=log
                )
                _wrk(f"{base}{path}", 1)  # both workers warm, connections pooled
            yield base
        finally:
            server.terminate()
            server.wait(timeout=30)


def run_under_load() -> dict[str, list[dict[str, float]]]:
    """Requests per second of every variant and view, in short interleaved bursts.

    All servers run at once (idle ones cost nothing) so that each round loads every
    variant within seconds of the others: a neighbour's burst of activity on the
    machine then lands on one round of all variants, not on all rounds of one.
    """
    figures: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    with ExitStack() as servers:
        bases = {variant: servers.enter_context(serving(variant)) for variant in VARIANTS}
        for _ in range(LOAD_ROUNDS):
            for variant in VARIANTS:
                figures[variant].append(
                    {
                        name: _wrk(f"{bases[variant]}{path}", LOAD_SECONDS)
                        for name, path in VIEWS.items()
                    }
                )
    return figures


def _spread(values: list[float], fmt: str = "{:+.0f}") -> str:
    median, low, high = statistics.median(values), min(values), max(values)
    median, low, high = fmt.format(median), fmt.format(low), fmt.format(high)
    return f"{median} ({low} to {high})"


def run() -> list:
    if shutil.which("wrk") is None:
        raise SystemExit(
            "bench.observability_overhead needs the load generator wrk: "
            "sudo apt-get install wrk (make bench installs it when run as root)"
        )
    database = "PostgreSQL" if _database_url() else "SQLite"
    in_process: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for _ in range(ROUNDS):
        for variant in VARIANTS:
            in_process[variant].append(run_in_process(variant))
    loaded = run_under_load()

    def added(variant: str, view: str) -> list[float]:
        return [
            mine[view] - bare[view]
            for mine, bare in zip(in_process[variant], in_process["bare"], strict=True)
        ]

    def ratios(variant: str, view: str) -> list[float]:
        return [
            mine[view] / bare[view]
            for mine, bare in zip(loaded[variant], loaded["bare"], strict=True)
        ]

    print(f"  minimal project, one-query view on {database}; {ROUNDS} interleaved rounds")
    print("  in process, microseconds per request (best block of each round, median of rounds):")
    for view in VIEWS:
        bare = statistics.median(r[view] for r in in_process["bare"])
        print(f"    {view:5} bare {bare:7.1f} µs", end="")
        for variant in VARIANTS[1:]:
            print(f"   {variant}: {_spread(added(variant, view))} µs", end="")
        print()
    print(f"  under load (gunicorn {WORKERS} sync workers, wrk {LOAD_CONNECTIONS} connections):")
    for view in VIEWS:
        bare = statistics.median(r[view] for r in loaded["bare"])
        print(f"    {view:5} bare {bare:7.0f} req/s", end="")
        for variant in VARIANTS[1:]:
            print(f"   {variant}: {_spread(ratios(variant, view), '{:.2f}')} of bare", end="")
        print()
    job_added = [r["job_run"] - r["job_bare"] for r in in_process["package"]]
    job_bare = statistics.median(r["job_bare"] for r in in_process["package"])
    job_spread = _spread(job_added, "{:+.1f}")
    print(f"  job_run: bare call {job_bare:.2f} µs, through the helper {job_spread} µs")

    def median_of(variant: str, view: str, figures: dict) -> float:
        return statistics.median(r[view] for r in figures[variant])

    return [
        Overhead(
            "observability.added_per_request (json view, in process)",
            measured=statistics.median(r["json"] for r in in_process["package"]),
            baseline=median_of("bare", "json", in_process),
            added=statistics.median(added("package", "json")),
            unit="µs",
            limit=GOAL_ADDED_MICROSECONDS,
            note=f"standard stack adds {statistics.median(added('standard', 'json')):+.0f} µs",
        ),
        Budget(
            "observability.throughput (json view, gunicorn, package / bare)",
            measured=median_of("package", "json", loaded),
            baseline=median_of("bare", "json", loaded),
            unit="req/s",
            goal=GOAL_THROUGHPUT_RATIO,
            paired=statistics.median(ratios("package", "json")),
            note=f"standard stack {statistics.median(ratios('standard', 'json')):.2f}; "
            "ratio: median of per-round ratios",
        ),
        Overhead(
            "observability.job_run added per run (empty job, in process)",
            measured=statistics.median(r["job_run"] for r in in_process["package"]),
            baseline=statistics.median(r["job_bare"] for r in in_process["package"]),
            added=statistics.median(job_added),
            unit="µs",
            limit=GOAL_JOB_ADDED_MICROSECONDS,
        ),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=VARIANTS, required=True)
    args = parser.parse_args()
    print(json.dumps(measure_in_process(args.child)))
