"""Rule evaluation throughput against a real Prometheus over backfilled data.

1,000 and 10,000 enabled rules, each with its own PromQL, evaluated by two real
Celery worker processes (Redis broker, PostgreSQL). The baseline is the same
queries sent straight to Prometheus by two processes with no engine around them,
measured in the same run; the ratio says how much of the time the engine adds.
Also printed: the engine's own time per rule with the query time subtracted,
from an in-process evaluation of 1,000 rules.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench import services
from bench.report import Budget

SHARDS = 100
SIZES = (1_000, 10_000)
GOAL_SECONDS_FOR_10K = 15.0
# One rule in a hundred breaches and opens an alert: a busy day, not a storm.
BREACHING_EVERY = 100
BROKER_DB = 13


def _expr(i: int) -> str:
    # Distinct text per rule, so no two rules share a query: the worst case.
    return f'bench_value{{shard="{i % SHARDS}"}} * {1 + i // SHARDS}'


def _bare_queries(url: str, exprs: list[str], at: float) -> None:
    from controlplane.promql.client import PrometheusClient

    client = PrometheusClient(url, timeout=10)
    for expr in exprs:
        client.query(expr, at=at)


def bare_query_seconds(url: str, count: int, at: float) -> float:
    exprs = [_expr(i) for i in range(count)]
    halves = [exprs[0::2], exprs[1::2]]
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.starmap(_bare_queries, [(url, half, at) for half in halves])
    return time.perf_counter() - started


def run() -> list[Budget]:
    missing = services.missing_services()
    if missing:
        print(f"  skipped: needs {', '.join(missing)}")
        return []
    services.setup_django()
    from tests.integration.prometheus import T0, PrometheusServer

    budgets: list[Budget] = []
    # A database of its own, so a bench never fights a test run over test_<name>.
    with (
        services.bench_database("bench_controlplane") as test_db,
        tempfile.TemporaryDirectory() as tmp,
    ):
        series = {
            f'bench_value{{shard="{s}"}}': [(T0.timestamp() + m * 60, 1.0) for m in range(0, 61)]
            for s in range(SHARDS)
        }
        with PrometheusServer.with_data(Path(tmp), series) as prometheus:
            at = T0 + timedelta(minutes=30)
            for size in SIZES:
                budgets += _measure(size, prometheus.url, at, test_db)
            budgets.append(_engine_overhead(prometheus.url, at))
            budgets += _schedule_lag(prometheus.url, test_db)
    return budgets


def _seed(size: int, url: str):
    from controlplane.alerting.models import Alert, AlertRule
    from controlplane.catalog.models import MetricSource, Organization

    Alert.objects.all().delete()
    AlertRule.objects.all().delete()
    MetricSource.objects.all().delete()
    Organization.objects.all().delete()
    org = Organization.objects.create(slug="bench", name="Bench")
    source = MetricSource.objects.create(organization=org, name="prom", url=url)
    AlertRule.objects.filter(organization=org).delete()  # the built-ins
    AlertRule.objects.bulk_create(
        AlertRule(
            organization=org,
            source=source,
            key=f"bench.{i}",
            name=f"bench {i}",
            expr=_expr(i),
            op=">",
            threshold=0.5 if i % BREACHING_EVERY == 0 else 1e9,
            verification="verified",
        )
        for i in range(size)
    )
    from controlplane.alerting.evaluation import ensure_evaluations

    ensure_evaluations()  # bulk_create skips the receiver that makes them
    return list(AlertRule.objects.filter(organization=org).values_list("pk", flat=True))


def _measure(size: int, url: str, at, test_db: str) -> list[Budget]:

    from controlplane.alerting.models import RuleEvaluation
    from controlplane.alerting.tasks import batches, evaluate_rules

    ids = _seed(size, url)
    broker, env = services.fresh_broker(test_db, BROKER_DB)
    workers = services.start_workers(env, broker)
    try:
        started = time.perf_counter()
        for batch in batches(ids):
            evaluate_rules.delay(batch, at=at.isoformat())
        _until_evaluated(workers)
        engine = time.perf_counter() - started
    finally:
        services.stop(workers)
    firing = RuleEvaluation.objects.filter(state="firing").count()
    assert firing == size // BREACHING_EVERY, f"{firing} of {size} rules fired"
    bare = bare_query_seconds(url, size, at.timestamp())
    print(
        f"  {size:>6} rules: {engine:6.2f} s with the engine ({size / engine:,.0f} rules/s), "
        f"{bare:6.2f} s as bare queries ({size / bare:,.0f} queries/s)"
    )
    budgets = [
        Budget(
            f"alerting.rules_per_second ({size:,} rules, 2 workers, engine / bare queries)",
            measured=size / engine,
            baseline=size / bare,
            unit="rules/s",
            goal=0.5,
            note=f"{engine:.2f} s for {size:,} rules",
        )
    ]
    if size == 10_000:
        budgets.append(
            Budget(
                "alerting.10k_rules_within_15s (goal seconds / measured seconds)",
                measured=GOAL_SECONDS_FOR_10K,
                baseline=engine,
                unit="s",
                goal=1.0,
                note=f"{engine:.2f} s measured",
            )
        )
    return budgets


def _until_evaluated(workers: list[subprocess.Popen]) -> None:
    """Every seeded rule evaluated once; a worker that dies fails the bench at once."""
    from controlplane.alerting.models import RuleEvaluation
    from tests import waiting

    def done() -> bool:
        for n, worker in enumerate(workers):
            if worker.poll() is not None:
                raise RuntimeError(
                    f"bench worker {n} exited with {worker.returncode}:\n"
                    + services.worker_log(n).read_text(errors="replace")[-3000:]
                )
        return not RuleEvaluation.objects.filter(last_evaluated_at__isnull=True).exists()

    waiting.until(done, what="every rule evaluated once by the bench workers", within=300)


LAG_RULES = 1_000
LAG_INTERVAL = timedelta(seconds=10)
LAG_WARM_UP = 12.0  # seconds: the first round, while beat and workers settle
LAG_MEASURED = 40.0  # seconds: four rounds of every rule
LAG_GOAL_SECONDS = 1.0


def _schedule_lag(url: str, test_db: str) -> list[Budget]:
    """1,000 rules at a 10 s interval under a real beat and two workers, for four rounds:
    the lag from each rule's slot to the start of its evaluation, and the spacing of
    consecutive evaluations of a rule against its interval."""
    from django.utils import timezone

    from controlplane.alerting.models import AlertRule, RuleEvaluation
    from tests import waiting

    ids = _seed(LAG_RULES, url)
    now = timezone.now()
    AlertRule.objects.filter(pk__in=ids).update(interval=LAG_INTERVAL)
    # Phases spread over the interval, as rules created over time have them.
    for n, pk in enumerate(ids):
        RuleEvaluation.objects.filter(rule_id=pk).update(
            due_at=now + LAG_INTERVAL * (n / len(ids)) + timedelta(seconds=LAG_WARM_UP / 2)
        )
    broker, env = services.fresh_broker(test_db, BROKER_DB)
    workers = services.start_workers(env, broker)
    beat_log = services.log_path("bench-beat")
    beat = services.start_beat(env, beat_log)
    seen: dict[tuple[int, object], float] = {}
    try:
        waiting.until(
            lambda: RuleEvaluation.objects.filter(slot_at__isnull=False).exists(),
            what="beat's first tick to be evaluated",
            process=beat,
            log=beat_log,
        )
        started = time.monotonic()
        while time.monotonic() - started < LAG_WARM_UP + LAG_MEASURED:
            for rule_id, slot, began in RuleEvaluation.objects.filter(
                slot_at__isnull=False
            ).values_list("rule_id", "slot_at", "last_evaluated_at"):
                if time.monotonic() - started >= LAG_WARM_UP:
                    seen.setdefault((rule_id, slot), (began - slot).total_seconds())
            time.sleep(0.5)
    finally:
        services.stop([beat, *workers])
    lags = sorted(seen.values())
    slots: dict[int, list] = {}
    for rule_id, slot in seen:
        slots.setdefault(rule_id, []).append(slot)
    gaps = [
        (b - a).total_seconds()
        for times in slots.values()
        for a, b in zip(sorted(times), sorted(times)[1:], strict=False)
    ]
    if not lags or not gaps:
        raise RuntimeError(f"no evaluation was seen in {LAG_MEASURED:g} s; see {beat_log}")
    p50, p95, worst = lags[len(lags) // 2], lags[int(len(lags) * 0.95)], lags[-1]
    spacing = sum(gaps) / len(gaps)
    print(
        f"  slot lag, {LAG_RULES:,} rules at {LAG_INTERVAL.seconds} s, 2 workers, "
        f"{len(lags):,} evaluations: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        f"max {worst * 1000:.0f} ms; mean spacing {spacing:.3f} s"
    )
    return [
        Budget(
            "alerting.slot_lag_p95 (1 s goal / p95 lag from slot to evaluation start)",
            measured=LAG_GOAL_SECONDS,
            baseline=p95,
            unit="s",
            goal=1.0,
            note=f"p50 {p50:.3f} s, p95 {p95:.3f} s, max {worst:.3f} s",
        ),
        Budget(
            "alerting.evaluation_spacing (interval / mean time between a rule's evaluations)",
            measured=LAG_INTERVAL.total_seconds(),
            baseline=spacing,
            unit="s",
            goal=0.99,
            note=f"{len(gaps):,} gaps",
        ),
    ]


def _engine_overhead(url: str, at) -> Budget:
    from controlplane.alerting.evaluation import evaluate_claimed

    ids = _seed(1_000, url)
    started = time.perf_counter()
    outcomes = evaluate_claimed(ids, at=at)
    total = time.perf_counter() - started
    query = sum(o.query_seconds for o in outcomes)
    per_rule_ms = (total - query) / len(outcomes) * 1000
    print(
        f"  engine's own time per rule (1 process, query time subtracted): "
        f"{per_rule_ms:.2f} ms; query time per rule {query / len(outcomes) * 1000:.2f} ms"
    )
    return Budget(
        "alerting.engine_share_of_evaluation (query time / total time, 1 process)",
        measured=query,
        baseline=total,
        unit="s",
        goal=0.5,
        note=f"engine {per_rule_ms:.2f} ms per rule",
    )
