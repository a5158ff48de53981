"""Paging end to end: from a metric crossing its threshold to the webhook receiver.

1. Latency, side by side. A gauge the bench controls (a loopback exporter), scraped by a
   real Prometheus every S = 1 s, is watched twice at once: by our rule (evaluated every
   E = 1 s, the shortest interval a rule may have, with `for: 0`) under a real beat and
   two real workers (Redis broker, PostgreSQL), paging a webhook channel of the default
   policy with notify_on_resolve; and, when Alertmanager is installed, by Prometheus' own
   alerting rule (evaluation 1 s) through a real Alertmanager at its tightest settings
   (group_wait 0, group_interval 1 s) to a second loopback receiver. Each system has its
   own series of the gauge and its own driver, so each cycle runs at its own pace:
   breach -> the receiver has the trigger; clear -> it has the resolve; breach again
   within a second -> it has the new trigger; clear -> resolve (see CYCLE). The goal
   (issue 10): our p95 of each transition at most S + E + 1 s; Alertmanager's figures
   are the baseline printed beside ours.
2. Steps on time: alerts opened at random moments on a policy whose step waits 2 s;
   the lag from each step's time to its notification written, and to its arrival.
3. Fan-out: 1,000 alerts opened in one transaction, escalated to one webhook channel,
   delivered by two workers, one SIGKILLed once deliveries are under way: seconds until
   the ledger has every row sent (the killed worker's rows wait for its lease, 25 s in
   the bench), alerts never received (must be 0) and alerts received more than once
   (must be 0), counted inside the bodies (a body may bundle alerts).
"""

from __future__ import annotations

import math
import os
import random
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from subprocess import Popen
from typing import Any

from bench import services
from bench.report import Budget, Overhead

DATABASE = "bench_paging"
BROKER_DB = 14
WORKERS, BEAT_LOG = "bench-paging", "bench-paging-beat"  # hostnames' and logs' prefixes
SCRAPE_SECONDS = 1.0  # S
# E: the shortest interval a rule may have (AlertRule's check constraint: at least 1 s).
EVALUATION_SECONDS = 1.0
GOAL_SECONDS = SCRAPE_SECONDS + EVALUATION_SECONDS + 1.0
CYCLES = 20
# A transition not heard of by then is a broken pipeline, not a slow one.
TRANSITION_DEADLINE = 30.0
POLL_SECONDS = 0.01

OURS, THEIRS = "ours", "alertmanager"
GAUGE = "bench_gauge"
THEIR_ALERT = "BenchGauge"

STEP_DELAY = timedelta(seconds=2)
STEP_ALERTS = 20
STEP_GOAL_SECONDS = 1.0

FANOUT = 1_000
# The delivery lease of the bench's workers (PAGING_LEASE_SECONDS): production's 60 s
# would only lengthen the wait for the killed worker's rows; 25 s is still longer than
# any send may take (the outbound guard cuts an exchange at 20 s). The outbox's lease
# stays production's: it also bounds how long one dispatch task runs, which shapes the
# drain, not only the wait.
DELIVERY_LEASE_SECONDS = 25
# Alerts received before one worker is killed: deliveries are under way by then.
KILL_AFTER = 100

# (transition, gauge value, status the receiver must get, bounds of the random pause
# before the move). A cycle breaches after a quiet spell (both pipelines settled on the
# cleared value), clears, breaches again within a scrape interval of the resolve's
# arrival, and clears. Every pause is random over at least one period of the scrape and
# of the evaluation, so moves fall at every phase of both: a move made the instant a
# notification arrives falls at the same phase every time (the one the pipeline's delay
# sets), and would measure that one phase twenty times.
CYCLE = (
    ("trigger", 1.0, "firing", (1.0, 2.0)),
    ("resolve", 0.0, "resolved", (0.0, 1.0)),
    ("re-trigger", 1.0, "firing", (0.0, 1.0)),
    ("resolve", 0.0, "resolved", (0.0, 1.0)),
)
TRANSITIONS = ("trigger", "resolve", "re-trigger")
LOOPBACK = "127.0.0.0/8,::1/128"


# --- pure: reading receivers, percentiles, tallies ----------------------------------


@dataclass(frozen=True)
class Arrival:
    """One alert inside one webhook body, as the receiver got it."""

    at: float  # the receiver's time.time()
    status: str  # firing | resolved
    key: str  # ours: the alert's id; Alertmanager's: its fingerprint


def arrivals(received: Iterable[Any], path: str) -> list[Arrival]:
    """Every alert of every v4 body that came to `path`: a body may bundle several."""
    found = []
    for request in received:
        if request.path != path or not isinstance(request.body, dict):
            continue
        for alert in request.body.get("alerts") or []:
            if isinstance(alert, dict):
                key = alert.get("alert_id", alert.get("fingerprint", ""))
                found.append(Arrival(request.at, str(alert.get("status")), str(key)))
    return found


def first_arrival(found: Iterable[Arrival], since: float, status: str) -> float | None:
    """When the first alert with `status` arrived at or after `since`; None if none has."""
    return min((a.at for a in found if a.at >= since and a.status == status), default=None)


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..1): a value that was measured."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    # Rounded first: 20 * 0.95 is 19 ranks, not the 19.000000000000004 floats may make it.
    rank = max(1, math.ceil(round(len(ordered) * q, 9)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Spread:
    count: int
    p50: float
    p95: float
    worst: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(len(values), percentile(values, 0.5), percentile(values, 0.95), max(values))

    def text(self) -> str:
        return f"{self.p50:.2f} / {self.p95:.2f} / {self.worst:.2f} s (n={self.count})"


@dataclass(frozen=True)
class Tally:
    expected: int
    distinct: int  # expected alerts received at least once
    duplicates: int  # receptions beyond the first, of any alert
    strangers: int  # alerts received that were never expected

    @property
    def lost(self) -> int:
        return self.expected - self.distinct


def tally(expected: Iterable[str], received: Iterable[str]) -> Tally:
    wanted = set(expected)
    counts = Counter(received)
    return Tally(
        expected=len(wanted),
        distinct=len(wanted & counts.keys()),
        duplicates=sum(n - 1 for n in counts.values()),
        strangers=len(counts.keys() - wanted),
    )


# --- the exporter the bench moves ------------------------------------------------------


class Exporter:
    """A loopback HTTP server answering /metrics with one gauge per system, in the
    Prometheus text format; `set` moves a gauge and says when."""

    def __init__(self, systems: Iterable[str]) -> None:
        self.values = {system: 0.0 for system in systems}
        self._lock = threading.Lock()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = self.path == "/metrics"
                body = exporter.text().encode() if found else b""
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.target = f"127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,))
        self._thread.daemon = True
        self._thread.start()

    def text(self) -> str:
        with self._lock:
            lines = [f'{GAUGE}{{system="{s}"}} {v:g}' for s, v in self.values.items()]
        return "\n".join([f"# TYPE {GAUGE} gauge", *lines]) + "\n"

    def set(self, system: str, value: float) -> float:
        """Set the gauge; returns the moment it was set (time.time())."""
        with self._lock:
            self.values[system] = value
            return time.time()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


# --- Prometheus and Alertmanager -------------------------------------------------------


def prometheus_config(exporter: str, rules: Path | None, alertmanager: str | None) -> str:
    config = (
        "global:\n"
        f"  scrape_interval: {SCRAPE_SECONDS:g}s\n"
        f"  scrape_timeout: {SCRAPE_SECONDS:g}s\n"
        f"  evaluation_interval: {EVALUATION_SECONDS:g}s\n"
        "scrape_configs:\n"
        "  - job_name: bench\n"
        f"    static_configs: [{{targets: ['{exporter}']}}]\n"
    )
    if rules is not None and alertmanager is not None:
        config += (
            f"rule_files: ['{rules}']\n"
            "alerting:\n"
            "  alertmanagers:\n"
            f"    - static_configs: [{{targets: ['{alertmanager}']}}]\n"
        )
    return config


def their_rules() -> str:
    return (
        "groups:\n"
        "  - name: bench\n"
        f"    interval: {EVALUATION_SECONDS:g}s\n"
        "    rules:\n"
        f"      - alert: {THEIR_ALERT}\n"
        f'        expr: {GAUGE}{{system="{THEIRS}"}} > 0.5\n'
        "        for: 0s\n"
    )


def alertmanager_config(webhook: str) -> str:
    """Alertmanager at its tightest: a new group notifies at once, a change within a
    second; nothing repeats during the bench; resolve_timeout stays its default."""
    return (
        "route:\n"
        "  receiver: bench\n"
        "  group_by: [alertname]\n"
        "  group_wait: 0s\n"
        "  group_interval: 1s\n"
        "  repeat_interval: 24h\n"
        "receivers:\n"
        "  - name: bench\n"
        "    webhook_configs:\n"
        f"      - url: '{webhook}'\n"
        "        send_resolved: true\n"
    )


def _alertmanager_binary() -> str | None:
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def _start_prometheus(tmp: Path, exporter: Exporter, alertmanager: str | None) -> tuple[Popen, str]:
    from tests.services import free_port

    rules = tmp / "rules.yml"
    rules.write_text(their_rules())
    config = tmp / "prometheus.yml"
    config.write_text(
        prometheus_config(exporter.target, rules if alertmanager else None, alertmanager)
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = services.start_server(
        [
            shutil.which("prometheus") or "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        f"{url}/-/ready",
        "Prometheus",
        tmp / "prometheus.log",
    )
    return process, url


def _start_alertmanager(tmp: Path, binary: str, webhook: str) -> tuple[Popen, str]:
    from tests.services import free_port

    config = tmp / "alertmanager.yml"
    config.write_text(alertmanager_config(webhook))
    port = free_port()
    process = services.start_server(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp / 'alertmanager'}",
            f"--web.listen-address=127.0.0.1:{port}",
            # One instance: no gossip, so nothing waits for peers to settle.
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        f"http://127.0.0.1:{port}/-/ready",
        "Alertmanager",
        tmp / "alertmanager.log",
    )
    return process, f"127.0.0.1:{port}"


def _until_scraped(prometheus: str, systems: Iterable[str]) -> None:
    """Prometheus has a sample of every system's gauge."""
    import requests

    from tests import waiting

    wanted = set(systems)

    def probe() -> bool:
        answer = requests.get(
            f"{prometheus}/api/v1/query", params={"query": GAUGE}, timeout=5
        ).json()
        found = {item["metric"].get("system") for item in answer["data"]["result"]}
        return wanted <= found

    waiting.until(probe, what=f"Prometheus' first scrape of {GAUGE} ({', '.join(sorted(wanted))})")


# --- the receivers ---------------------------------------------------------------------


def _receivers():
    """Our webhook receiver (tests/receivers.py: it checks every body against
    PROTOCOLS.md and our additions) and one for Alertmanager's own bodies."""
    from tests.receivers import WebhookReceiver

    class AlertmanagerWebhook(WebhookReceiver):
        """Alertmanager's webhook: version 4 without our additions (no trace_id)."""

        name = "Alertmanager webhook"

        def check(self, raw: bytes, body: Any, headers: Mapping[str, str]) -> list[str]:
            return [p for p in super().check(raw, body, headers) if "trace_id" not in p]

    return WebhookReceiver(), AlertmanagerWebhook()


# --- our side: the database's definitions, the workers and beat -----------------------


@dataclass
class Ours:
    rule: Any  # the gauge's rule
    step_rule: Any  # alerts opened by hand on the step policy
    fanout_rule: Any  # alerts opened by hand on the fan-out policy


def _define(prometheus: str, receiver_url: str) -> Ours:
    from controlplane.alerting.models import AlertRule
    from controlplane.catalog.models import Organization
    from tests.factories import make_channel, make_policy, make_rule, make_source

    organization = Organization.objects.create(slug="bench", name="Bench")
    # The built-in rules read internal signals that could fire and page the receiver.
    AlertRule.objects.filter(organization=organization).delete()
    source = make_source(organization, prometheus, timeout=5)

    def channel(name: str):
        return make_channel(organization, name, "webhook", url=f"{receiver_url}/{name}")

    make_policy(
        organization,
        "default",
        steps=[(0, [channel(OURS)])],
        is_default=True,
        notify_on_resolve=True,
    )
    rule = make_rule(
        organization,
        "bench.gauge",
        source=source,
        expr=f'{GAUGE}{{system="{OURS}"}}',
        op=">",
        threshold=0.5,
        interval=timedelta(seconds=EVALUATION_SECONDS),
        for_duration=timedelta(0),
        verification=AlertRule.Verification.VERIFIED,
    )
    # Rules that are never evaluated: their alerts are opened by the bench.
    steps = make_policy(organization, "steps", steps=[(STEP_DELAY, [channel("steps")])])
    fanout = make_policy(organization, "fanout", steps=[(0, [channel("fanout")])])
    return Ours(
        rule,
        make_rule(organization, "bench.steps", enabled=False, escalation_policy=steps),
        make_rule(organization, "bench.fanout", enabled=False, escalation_policy=fanout),
    )


@contextmanager
def _our_processes(database: str, rule_id: int) -> Iterator[tuple[list[Popen], Popen]]:
    """Two real workers and beat; yields once our rule has been evaluated on schedule."""
    from controlplane.alerting.models import RuleEvaluation
    from tests import waiting

    broker, env = services.fresh_broker(database, BROKER_DB)
    # The sources and the webhook receivers are on loopback, which the guard refuses.
    env.setdefault("ALLOWED_SOURCE_NETWORKS", LOOPBACK)
    env["ALLOWED_PRIVATE_NETWORKS"] = LOOPBACK
    env["PAGING_LEASE_SECONDS"] = str(DELIVERY_LEASE_SECONDS)
    workers = services.start_workers(env, broker, prefix=WORKERS)
    beat_log = services.log_path(BEAT_LOG)
    beat = services.start_beat(env, beat_log)
    try:
        waiting.until(
            lambda: RuleEvaluation.objects.filter(rule_id=rule_id, slot_at__isnull=False).exists(),
            what="beat's first evaluation of the bench rule",
            process=beat,
            log=beat_log,
        )
        yield workers, beat
    finally:
        services.stop([beat, *workers])


# --- 1. latency ------------------------------------------------------------------------


@dataclass
class Pipeline:
    """One system under test: the gauge series it watches and where its bodies land."""

    system: str
    title: str
    receiver: Any
    path: str
    processes: list[tuple[Popen, Path]]


def _alive(pipeline: Pipeline) -> None:
    for process, log in pipeline.processes:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(
                f"{pipeline.title}: pid {process.pid} exited with {process.returncode}:\n{tail}"
            )


class Aborted(Exception):
    """The other pipeline failed: this one stops too, rather than finish its cycles."""


def _await_arrival(
    pipeline: Pipeline, since: float, status: str, what: str, abort: threading.Event
) -> float:
    """When the receiver got the first `status` alert at or after `since`. Polled every
    10 ms, so the pause before the next move counts from the arrival; gives up at the
    deadline, or when a process of the pipeline exits."""
    from tests.waiting import WaitTimeout

    deadline = time.monotonic() + TRANSITION_DEADLINE
    while True:
        found = arrivals(list(pipeline.receiver.requests), pipeline.path)
        at = first_arrival(found, since, status)
        if at is not None:
            return at
        _alive(pipeline)
        if abort.is_set():
            raise Aborted(pipeline.title)
        if time.monotonic() > deadline:
            raise WaitTimeout(
                f"{pipeline.title}: no {status} alert at {pipeline.receiver.url}"
                f"{pipeline.path} within {TRANSITION_DEADLINE:g} s of the gauge's move ({what})"
            )
        time.sleep(POLL_SECONDS)


def _drive(
    pipeline: Pipeline, exporter: Exporter, seed: int, abort: threading.Event
) -> dict[str, list[float]]:
    rng = random.Random(seed)
    taken: dict[str, list[float]] = {name: [] for name in TRANSITIONS}
    for n in range(CYCLES):
        for transition, value, status, pause in CYCLE:
            time.sleep(rng.uniform(*pause))
            since = exporter.set(pipeline.system, value)
            at = _await_arrival(pipeline, since, status, f"{transition}, cycle {n + 1}", abort)
            taken[transition].append(at - since)
    return taken


def _latency(pipelines: list[Pipeline], exporter: Exporter) -> dict[str, dict[str, Spread]]:
    """Every pipeline's cycles, run side by side; each transition's spread by system."""
    abort = threading.Event()
    with ThreadPoolExecutor(len(pipelines)) as pool:
        futures = {
            p.system: pool.submit(_drive, p, exporter, seed, abort)
            for seed, p in enumerate(pipelines)
        }
        wait(futures.values(), return_when=FIRST_EXCEPTION)
        abort.set()  # a no-op when all finished; else the first failure stops the rest
        failures = [f.exception() for f in futures.values() if f.exception()]
        first = next((e for e in failures if not isinstance(e, Aborted)), None)
        if first is not None:
            raise first
        taken = {system: future.result() for system, future in futures.items()}
    for pipeline in pipelines:
        refused = [r for r in pipeline.receiver.requests if r.problems]
        if refused:
            print(f"  {pipeline.title}: {len(refused)} bodies refused: {refused[0].problems}")
    return {
        system: {name: Spread.of(values) for name, values in by_transition.items()}
        for system, by_transition in taken.items()
    }


def _latency_budgets(spreads: dict[str, dict[str, Spread]]) -> list[Budget]:
    theirs = spreads.get(THEIRS)
    print(
        f"  S = {SCRAPE_SECONDS:g} s, E = {EVALUATION_SECONDS:g} s, {CYCLES} cycles; "
        f"p50 / p95 / max, from the gauge's move to the receiver's answer"
    )
    header = f"  {'transition':<11} {'ours':<34}"
    if theirs:
        header += f" {'Prometheus + Alertmanager':<34} ours/theirs p95"
    print(header)
    budgets = []
    for name in TRANSITIONS:
        ours = spreads[OURS][name]
        line = f"  {name:<11} {ours.text():<34}"
        note = f"ours p50 {ours.p50:.2f} s, p95 {ours.p95:.2f} s, n={ours.count}"
        if theirs:
            ratio = ours.p95 / theirs[name].p95 if theirs[name].p95 else 0.0
            line += f" {theirs[name].text():<34} {ratio:.2f}"
            note += (
                f"; Prometheus + Alertmanager p50 {theirs[name].p50:.2f} s, "
                f"p95 {theirs[name].p95:.2f} s: ours/theirs {ratio:.2f}"
            )
        else:
            note += "; no Alertmanager to compare with"
        print(line)
        budgets.append(
            Budget(
                f"paging.{name.replace('-', '')}_p95 (S+E+1 = {GOAL_SECONDS:g} s goal / our "
                f"p95, metric move to webhook)",
                measured=GOAL_SECONDS,
                baseline=ours.p95,
                unit="s",
                goal=1.0,
                note=note,
            )
        )
    return budgets


# --- 2. steps on time ------------------------------------------------------------------


def _step_lag(ours: Ours, receiver: Any) -> Budget:
    """Alerts opened at random moments on a policy whose one step waits STEP_DELAY:
    how late each step is acted on (its notification written) and heard."""
    from controlplane.alerting.lifecycle import open_alert
    from controlplane.catalog.actors import BEAT
    from controlplane.paging.models import Notification
    from tests import waiting

    rng = random.Random(7)
    alerts = []
    for n in range(STEP_ALERTS):
        time.sleep(rng.uniform(0.1, 0.6))
        alert, _ = open_alert(
            ours.step_rule, f"step-{n}", {"n": str(n)}, 1.0, {"summary": "step"}, actor=BEAT
        )
        alerts.append(alert)
    due = {str(a.pk): (a.started_at + STEP_DELAY).timestamp() for a in alerts}

    def heard() -> dict[str, float]:
        found = arrivals(list(receiver.requests), "/steps")
        first: dict[str, float] = {}
        for arrival in found:
            if arrival.key in due:
                first[arrival.key] = min(first.get(arrival.key, arrival.at), arrival.at)
        return first if len(first) == len(due) else {}

    received = waiting.until(heard, what=f"the {STEP_ALERTS} step notifications at the receiver")
    written = dict(
        Notification.objects.filter(alert__in=alerts, step=0).values_list("alert_id", "created_at")
    )
    acted = Spread.of([written[int(k)].timestamp() - at for k, at in due.items()])
    arrived = Spread.of([received[k] - at for k, at in due.items()])
    print(
        f"  steps ({STEP_ALERTS} alerts, a step of {STEP_DELAY.seconds} s): written "
        f"{acted.text()} after the step's time; received {arrived.text()}"
    )
    return Budget(
        f"paging.step_lag_p95 ({STEP_GOAL_SECONDS:g} s goal / p95 from a step's time to its "
        "notification written)",
        measured=STEP_GOAL_SECONDS,
        baseline=acted.p95,
        unit="s",
        goal=1.0,
        note=f"written p50 {acted.p50:.2f} s, max {acted.worst:.2f} s; at the receiver "
        f"p50 {arrived.p50:.2f} s, p95 {arrived.p95:.2f} s",
    )


# --- 3. fan-out with a worker killed ---------------------------------------------------


@dataclass(frozen=True)
class Drain:
    """How a fan-out went, in seconds from the commit that opened its alerts."""

    handed: Spread  # each alert's opening handed to paging by the outbox
    handed_late: int  # openings held by the killed worker until its outbox lease ran out
    drained: float | None  # the last row sent; None when some row never was
    first_tries: float | None  # the last row sent at its first attempt
    sent_again: int  # rows sent again once a killed worker's delivery lease ran out


def drain_figures(
    committed: float,
    events: Iterable[tuple[float | None, float | None]],
    rows: Iterable[tuple[float | None, int]],
) -> Drain:
    """`events`: (handed-over time, end of the lease it was under at the kill) of each
    opening; `rows`: (sent time or None, attempts) of each notification. An opening
    handed over only once the lease it was under at the kill had run out waited for a
    dead worker: a live one hands over well within its lease."""
    events, rows = list(events), list(rows)
    handed = [at - committed for at, _ in events if at is not None]
    sent = [at - committed for at, _ in rows if at is not None]
    first = [at - committed for at, attempts in rows if at is not None and attempts == 1]
    return Drain(
        handed=Spread.of(handed) if handed else Spread(0, 0.0, 0.0, 0.0),
        handed_late=sum(1 for at, held in events if at and held and at >= held),
        drained=max(sent) if sent and len(sent) == len(rows) else None,
        first_tries=max(first) if first else None,
        sent_again=sum(1 for at, attempts in rows if at is not None and attempts > 1),
    )


def _fanout(ours: Ours, receiver: Any, workers: list[Popen]) -> list[Budget | Overhead]:
    from django.db import transaction
    from django.utils import timezone

    from controlplane.alerting.lifecycle import open_alert
    from controlplane.alerting.models import AlertEvent
    from controlplane.catalog.actors import BEAT
    from controlplane.paging import engine
    from controlplane.paging.models import Notification
    from tests import waiting

    # One transaction: the storm arrives at one instant, with one nudge.
    with transaction.atomic():
        alerts = [
            open_alert(
                ours.fanout_rule, f"fanout-{n}", {"n": str(n)}, 1.0, {"summary": "fan"}, actor=BEAT
            )[0]
            for n in range(FANOUT)
        ]
    committed = time.time()
    expected = [str(a.pk) for a in alerts]

    def received() -> list[str]:
        return [a.key for a in arrivals(list(receiver.requests), "/fanout")]

    rows = Notification.objects.filter(alert__rule=ours.fanout_rule, event="trigger")
    # Mid-run: once the first alerts are at the receiver and more are being written (the
    # outbox hands the openings over for several seconds). At a random moment after
    # that: the moment the receiver has a body is the one moment its sender has not yet
    # recorded it, and a kill aimed there would find it every time.
    waiting.until(
        lambda: len(set(received())) >= KILL_AFTER or rows.count() >= FANOUT // 2,
        what=f"{KILL_AFTER} fan-out alerts at the receiver, or half the rows written",
    )
    time.sleep(random.Random(11).uniform(0.0, 0.5))
    victim = workers[1]
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed = time.time() - committed
    sending = rows.filter(state=Notification.State.SENDING).count()
    events = AlertEvent.objects.filter(alert__rule=ours.fanout_rule, kind="opened")
    unhanded = events.filter(dispatch=AlertEvent.Dispatch.PENDING)
    undecided = unhanded.count()
    # The openings under a lease at the kill, either worker's: the dead one's wait it out.
    held = dict(
        unhanded.filter(dispatch_claimed_until__gt=timezone.now()).values_list(
            "pk", "dispatch_claimed_until"
        )
    )
    unfinished = rows.filter(state__in=engine.QUEUED)
    lease = DELIVERY_LEASE_SECONDS
    waiting.until(
        lambda: not unhanded.exists() and not unfinished.exists(),
        what=f"every one of the {FANOUT:,} fan-out alerts handed to paging and sent or given up",
        within=outbox_lease_seconds() + lease + 60,
        retry_on=(),
    )
    # Give a straggler a moment: a duplicate may land after the ledger says sent.
    time.sleep(1.0)
    figures = drain_figures(
        committed,
        [
            (at.timestamp() if at else None, held[pk].timestamp() if pk in held else None)
            for pk, at in events.values_list("pk", "dispatched_at")
        ],
        [
            (at.timestamp() if at else None, attempts)
            for at, attempts in rows.values_list("sent_at", "attempts")
        ],
    )
    counted = tally(expected, received())
    bodies = [r for r in receiver.requests if r.path == "/fanout"]
    first_body = min(r.at for r in bodies) - committed
    drained = f"{figures.drained:.1f} s" if figures.drained is not None else "never (see dead)"
    print(
        f"  fan-out: {FANOUT:,} alerts in one commit, 2 workers, one SIGKILLed {killed:.1f} s "
        f"in ({sending} rows sending; {undecided} openings not yet handed to paging, "
        f"{len(held)} of them leased)"
    )
    print(
        f"    outbox: openings handed to paging {figures.handed.text()} after the commit, "
        f"{figures.handed_late} only once the killed worker's outbox lease ran out "
        f"({outbox_lease_seconds():g} s)"
    )
    print(
        f"    delivery: first body {first_body:.1f} s, {len(bodies)} bodies; every row sent "
        f"{drained} after the commit, those sent at their first attempt by "
        f"{figures.first_tries or float('nan'):.1f} s; {figures.sent_again} rows sent again "
        f"after the killed worker's delivery lease ({lease:g} s)"
    )
    print(
        f"    at the receiver: lost {counted.lost}, duplicates {counted.duplicates}"
        + (f", {counted.strangers} alerts not of the fan-out" if counted.strangers else "")
    )
    note = f"drained in {drained}, first body after {first_body:.1f} s; killed {killed:.1f} s in"
    return [
        Budget(
            f"paging.fanout_delivered ({FANOUT:,} alerts, 2 workers, one SIGKILLed: alerts "
            "received / alerts opened)",
            measured=counted.distinct,
            baseline=counted.expected,
            unit="alerts",
            goal=1.0,
            note=f"lost {counted.lost}; {note}",
        ),
        Overhead(
            "paging.fanout_duplicates (alerts received, counted inside bodies / distinct "
            "alerts received)",
            measured=counted.distinct + counted.duplicates,
            baseline=counted.distinct,
            added=counted.duplicates,
            unit="alerts",
            limit=0,
            note=f"{len(bodies):,} bodies; {figures.sent_again} rows sent again after a lease",
        ),
    ]


def outbox_lease_seconds() -> float:
    from controlplane.alerting import outbox

    return outbox.lease().total_seconds()


# --- the run ---------------------------------------------------------------------------


def run() -> list[Budget | Overhead]:
    missing = services.missing_services()
    if missing:
        print(f"  skipped: needs {', '.join(missing)}")
        return []
    binary = _alertmanager_binary()
    if binary is None:
        print(
            "  Alertmanager is not installed (Debian package prometheus-alertmanager): "
            "our figures only, nothing side by side"
        )
    started = time.monotonic()
    services.setup_django()
    print(f"  load average at the start: {os.getloadavg()[0]:.2f}")
    with ExitStack() as stack:
        bench = _set_up(stack, binary)
        print(f"  ({time.monotonic() - started:.0f} s to set up)")
        with _timed("cycles"):
            spreads = _latency(bench.pipelines, bench.exporter)
        budgets: list[Budget | Overhead] = _latency_budgets(spreads)
        with _timed("steps"):
            budgets.append(_step_lag(bench.ours, bench.receiver))
        with _timed("fan-out"):
            budgets += _fanout(bench.ours, bench.receiver, bench.workers)
    print(
        f"  ({time.monotonic() - started:.0f} s in all; load average at the end: "
        f"{os.getloadavg()[0]:.2f})"
    )
    return budgets


@dataclass
class Bench:
    exporter: Exporter
    pipelines: list[Pipeline]  # ours first
    ours: Ours
    receiver: Any  # our webhook receiver
    workers: list[Popen]


def _set_up(stack: ExitStack, alertmanager_binary: str | None) -> Bench:
    """Everything the phases run on, each part stopped by `stack` (in reverse order: the
    workers before their database is dropped)."""
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    exporter = stack.enter_context(
        closing(Exporter([OURS] + ([THEIRS] if alertmanager_binary else [])))
    )
    ours_receiver, their_receiver = _receivers()
    stack.enter_context(closing(ours_receiver))
    stack.enter_context(closing(their_receiver))
    theirs: list[Pipeline] = []
    alertmanager = None
    if alertmanager_binary:
        process, alertmanager = _start_alertmanager(
            tmp, alertmanager_binary, f"{their_receiver.url}/{THEIRS}"
        )
        stack.callback(services.stop, [process])
        theirs.append(
            Pipeline(
                THEIRS,
                "Prometheus + Alertmanager",
                their_receiver,
                f"/{THEIRS}",
                [(process, tmp / "alertmanager.log")],
            )
        )
    prometheus, prometheus_url = _start_prometheus(tmp, exporter, alertmanager)
    stack.callback(services.stop, [prometheus])
    _until_scraped(prometheus_url, exporter.values)
    for pipeline in theirs:
        pipeline.processes.append((prometheus, tmp / "prometheus.log"))

    database = stack.enter_context(services.bench_database(DATABASE))
    ours = _define(prometheus_url, ours_receiver.url)
    workers, beat = stack.enter_context(_our_processes(database, ours.rule.pk))
    processes = [(prometheus, tmp / "prometheus.log"), (beat, services.log_path(BEAT_LOG))]
    processes += [(w, services.worker_log(n, WORKERS)) for n, w in enumerate(workers)]
    mine = Pipeline(OURS, "ours", ours_receiver, f"/{OURS}", processes)
    return Bench(exporter, [mine, *theirs], ours, ours_receiver, workers)


@contextmanager
def _timed(what: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    print(f"  ({time.monotonic() - started:.0f} s of {what})")
