"""What the audit trail costs (issue 14): rule updates through the API with the trail on
and off, and the retention job's rows per second over a million events.

1. Rule updates. PATCH /api/v1/rules/<key>/ with a write token, changing the rule's
   annotations (a change the trail records, on a rule reading an internal signal, so no
   source is asked to check PromQL), served by gunicorn (deploy/gunicorn.conf.py, one
   sync worker) on the bench's PostgreSQL. Two servers run the same application side by
   side: one as in production, the other with the recorder paused for every request
   (`recorder._paused()`, a context variable only this bench sets, through
   `application` below). What the paused server still does is the rest of an audited
   save: the row read under lock and the diff against it (audited.py); what it skips is
   the event's insert and, after the commit, its seal into the organisation's chain.
   Interleaved rounds, the order alternating, each round's ratio taken on its own, so
   that the machine's slow spells fall on both alike. Printed: updates per second,
   median and p95 latency of each, and the ratio. Checked: every update on the trail's
   server left one sealed event, the paused one none.
2. Retention. A million sealed events (BENCH_AUDIT_EVENTS for fewer) of one
   organisation, written straight into the table with COPY, MACs and links computed
   with the key as the sealer computes them, the chain head set; all but the newest
   KEPT_SHARE older than the organisation's retention. Timed: `retention.purge(
   organization, now)` removing them, and how its time divides (what goes verified
   first, the batches of deletes, the rest: the cut, the receipt, the seals). Baseline
   from the same run: the same rows copied as a second organisation's, on the same
   table (same indexes, same trigger), removed by plain batched
   `DELETE ... WHERE id IN (SELECT id ... ORDER BY seq LIMIT n)` under the retention
   job's setting, each batch starting after the last one's highest sequence number,
   half before the purge and half after, so that both see the table at its fullest
   and emptiest alike. The ratio says what the purge's own work costs: verifying what
   goes, finding the cut, the ordering, the receipt. Checked: the purge removed
   exactly the old events and the chain that remains verifies.

`make bench` runs it with the others; alone (PostgreSQL only: no Prometheus, no broker):
DATABASE_URL=postgres://postgres@127.0.0.1:5432/<db> .venv/bin/python -m bench.audit
The retention part takes most of the time, loading included; BENCH_AUDIT_EVENTS=100000
makes a quick run.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import services
from bench.report import Budget

DATABASE = "bench_audit"
ORGANIZATION, BASELINE_ORGANIZATION = "bench-audit", "bench-audit-baseline"
RULE = "bench.audit"

ROUNDS = 8
UPDATES = 100  # per variant and round
WARMUP = 30  # per server, not timed
# The trail adds 8 statements to an update's 13: the event's insert, and after the
# commit the seal in a transaction of its own (the chain head locked, the event read,
# linked, the head moved), so a second commit. GOAL_UPDATES_TIMES the time of the same
# update with the trail paused, at most.
GOAL_UPDATES_TIMES = 1.5

EVENTS = 1_000_000
EVENTS_VARIABLE = "BENCH_AUDIT_EVENTS"
KEPT_SHARE = 0.001  # of the events, the newest, left younger than the retention
BATCH = 5_000  # retention.purge's default batch size, the baseline's too
COPY_CHUNK = 50_000  # rows per COPY transaction when loading
# The purge verifies what it removes before it removes anything (retention.py: a broken
# chain is reported, never purged): each event's canonical JSON and two HMACs, about
# 30 µs of Python an event where PostgreSQL deletes one in 6, so it may take up to 8
# times a plain batched delete of as many rows. Its batches of deletes alone, up to
# twice: a batch whose cost grows with what is left of the chain or the table (the
# open-ended range that once scanned the table for every batch) would break that.
GOAL_PURGE = 0.125
GOAL_PURGE_DELETES = 0.5
# retention.py's steps the bench times inside the purge: verifying what goes, and one
# batch of deletes.
VERIFYING, DELETING = "check_going", "delete_audit_batch"

# The server's switch (see application()): set by this bench in its servers' environment.
TRAIL_VARIABLE = "BENCH_AUDIT_TRAIL"
TRAIL_ON, TRAIL_OFF = "on", "off"

COLUMNS = (
    "chain",
    "organization_id",
    "at",
    "actor",
    "action",
    "object_type",
    "object_id",
    "object_label",
    "diff",
    "request_id",
    "trace_id",
    "mac",
    "seq",
    "prev_hash",
    "hash",
)


# --- pure ----------------------------------------------------------------------------


def events_wanted(environ: Mapping[str, str]) -> int:
    """How many events the retention part loads: BENCH_AUDIT_EVENTS, else a million."""
    raw = environ.get(EVENTS_VARIABLE, "").strip().replace("_", "")
    if not raw:
        return EVENTS
    if not raw.isdigit() or int(raw) < 100:
        raise ValueError(f"{EVENTS_VARIABLE} must be a whole number of at least 100, got {raw!r}")
    return int(raw)


def update_body(n: int) -> dict[str, Any]:
    """The n-th PATCH: annotations never sent before, so every update changes the rule."""
    return {"annotations": {"summary": f"bench update {n}", "description": "queue {{ $value }}"}}


def event_content(organization_id: int, at: datetime, n: int) -> dict[str, Any]:
    """The content of a typical event, a rule's annotations changed through the API."""
    return {
        "chain": organization_id,
        "organization_id": organization_id,
        "at": at.astimezone(UTC).isoformat(),
        "actor": "token:1",
        "action": "updated",
        "object_type": "alerting.alertrule",
        "object_id": str(n % 400 + 1),
        "object_label": f"Queue depth of service {n % 400}",
        "diff": {
            "annotations": {
                "from": {"summary": f"queue above {n - 1}"},
                "to": {"summary": f"queue above {n}"},
            }
        },
        "request_id": f"{n:032x}",
        "trace_id": f"{n * 7919:032x}",
    }


def event_times(count: int, cutoff: datetime, kept: int) -> Iterator[datetime]:
    """`count` times a second apart, the last `kept` after `cutoff`, the rest before it
    (by half a second at the edge, so "older than" and "not newer than" agree)."""
    old = count - kept
    for i in range(count):
        yield cutoff + timedelta(seconds=i - old + 0.5)


def sealed_rows(
    key: bytes,
    organization_id: int,
    times: Iterable[datetime],
    first_seq: int = 1,
    prev_hash: str = "",
) -> Iterator[tuple]:
    """Rows in COLUMNS order, each sealed as the sealer seals it (chain.py): the MAC over
    its content, the link to the row before. The last row's seq and hash are the chain
    head's."""
    from controlplane.audit import chain

    seq, previous = first_seq, prev_hash
    for at in times:
        content = event_content(organization_id, at, seq)
        mac = chain.content_mac(key, content)
        digest = chain.link_hash(key, seq, previous, mac)
        yield (
            content["chain"],
            content["organization_id"],
            at,
            content["actor"],
            content["action"],
            content["object_type"],
            content["object_id"],
            content["object_label"],
            json.dumps(content["diff"], separators=(",", ":")),
            content["request_id"],
            content["trace_id"],
            mac,
            seq,
            previous,
            digest,
        )
        seq, previous = seq + 1, digest


def stored(row: tuple, event_id: int):
    """A row of sealed_rows as chain.verify reads it back from the table."""
    from controlplane.audit import chain
    from controlplane.audit.models import content_of

    values = dict(zip(COLUMNS, row, strict=True))
    content = content_of({name: values[name] for name in chain.CONTENT_FIELDS})
    content["diff"] = json.loads(values["diff"])
    return chain.Sealed(
        event_id, values["seq"], values["prev_hash"], values["hash"], values["mac"], content
    )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def paired(baseline: list[float], measured: list[float]) -> float:
    """The median over rounds of baseline seconds / measured seconds (a speed ratio)."""
    return statistics.median(b / m for b, m in zip(baseline, measured, strict=True))


@dataclass
class Updates:
    """One server's figures: each round's seconds and each request's milliseconds."""

    rounds: list[float]
    latencies: list[float]

    def rate(self) -> float:
        return UPDATES * len(self.rounds) / sum(self.rounds)

    def line(self) -> str:
        return (
            f"{self.rate():,.1f} updates/s, median {statistics.median(self.latencies):.2f} ms, "
            f"p95 {percentile(self.latencies, 0.95):.2f} ms"
        )


@dataclass(frozen=True)
class Retention:
    """The purge and its baseline: rows removed and seconds taken by each."""

    events: int
    purged: int
    purge_seconds: float
    deleted: int
    delete_seconds: float
    load_seconds: float
    # Where the purge's time went: verifying what goes first, and its batches of deletes.
    verify_seconds: float = 0.0
    batches: int = 0
    batch_seconds: float = 0.0

    @property
    def purge_rate(self) -> float:
        return self.purged / self.purge_seconds

    @property
    def delete_rate(self) -> float:
        return self.deleted / self.delete_seconds


# --- the servers' application -------------------------------------------------------


def __getattr__(name: str) -> Any:
    """`bench.audit:application`, built when gunicorn loads it in its worker (before
    the worker's heap is frozen, as deploy/gunicorn.conf.py does for production)."""
    if name == "application":
        return server_application(os.environ)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def server_application(environ: Mapping[str, str]) -> Any:
    """The WSGI application of one of the bench's servers: the control plane's own
    with the trail on, the same inside `recorder._paused()` for every request with it
    off, as BENCH_AUDIT_TRAIL says ("on" or "off", no default)."""
    trail = environ.get(TRAIL_VARIABLE)
    if trail not in (TRAIL_ON, TRAIL_OFF):
        raise RuntimeError(f"{TRAIL_VARIABLE} must be {TRAIL_ON!r} or {TRAIL_OFF!r}, got {trail!r}")
    from controlplane.wsgi import application as controlplane

    if trail == TRAIL_ON:
        return controlplane
    from controlplane.audit.recorder import _paused

    def paused(environ: dict, start_response: Any) -> Iterable[bytes]:
        with _paused():
            return controlplane(environ, start_response)

    return paused


# --- the edges -----------------------------------------------------------------------


def run() -> list[Budget]:
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("  skipped: needs DATABASE_URL=postgres://… (COPY, the trigger, real servers)")
        return []
    services.setup_django()
    events = events_wanted(os.environ)
    print(f"  load average at the start: {_load()}")
    with services.bench_database(DATABASE) as database:
        budgets = _updates(database)
        budgets += _retention_budget(measure_retention(events))
    print(f"  load average at the end: {_load()}")
    return budgets


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def _updates(database: str) -> list[Budget]:
    import requests

    from controlplane.audit.models import AuditEvent
    from controlplane.catalog.models import ApiToken, Organization
    from tests.factories import make_rule

    org = Organization.objects.create(slug=ORGANIZATION, name="Bench audit")
    rule = make_rule(org, RULE)
    _, token = ApiToken.issue(org, ApiToken.Scope.WRITE)
    url = f"/api/v1/rules/{RULE}/"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    sent = 0
    figures = {TRAIL_ON: Updates([], []), TRAIL_OFF: Updates([], [])}

    def patch(session: requests.Session, base: str, latencies: list[float] | None) -> None:
        nonlocal sent
        sent += 1
        body = json.dumps(update_body(sent))
        began = time.perf_counter()
        response = session.patch(f"{base}{url}", data=body, headers=headers, timeout=30)
        took = time.perf_counter() - began
        if response.status_code != 200:
            raise RuntimeError(f"PATCH {url}: {response.status_code} {response.text[:500]}")
        if latencies is not None:
            latencies.append(took * 1000)

    before = _rule_events(rule.pk)
    with ExitStack() as stack:
        bases = {
            trail: stack.enter_context(_serving(database, trail)) for trail in (TRAIL_ON, TRAIL_OFF)
        }
        sessions = {trail: stack.enter_context(requests.Session()) for trail in bases}
        for trail, base in bases.items():
            for _ in range(WARMUP):
                patch(sessions[trail], base, None)
        warmed = _rule_events(rule.pk)
        for n in range(ROUNDS):
            order = (TRAIL_OFF, TRAIL_ON) if n % 2 == 0 else (TRAIL_ON, TRAIL_OFF)
            for trail in order:
                tally = figures[trail]
                began = time.perf_counter()
                for _ in range(UPDATES):
                    patch(sessions[trail], bases[trail], tally.latencies)
                tally.rounds.append(time.perf_counter() - began)
    recorded = _rule_events(rule.pk) - warmed
    if warmed - before != WARMUP or recorded != ROUNDS * UPDATES:
        raise RuntimeError(
            f"the trail's server recorded {warmed - before} events of {WARMUP} warm-up updates "
            f"and {recorded} of {ROUNDS * UPDATES} timed ones; the paused server's updates "
            "must record none and every other update one"
        )
    unsealed = AuditEvent.objects.filter(chain=org.pk, seq__isnull=True).count()
    if unsealed:
        raise RuntimeError(f"{unsealed} events of the rule left unsealed after their commit")
    on, off = figures[TRAIL_ON], figures[TRAIL_OFF]
    ratio = paired(off.rounds, on.rounds)
    print(f"  PATCH {url} (gunicorn, 1 sync worker each, {ROUNDS} rounds of {UPDATES}):")
    print(f"    trail on:  {on.line()}")
    print(f"    trail off: {off.line()}")
    longer = ", ".join(f"{a / b:.2f}" for a, b in zip(on.rounds, off.rounds, strict=True))
    print(
        f"    the trail makes an update {1 / ratio:.2f}x as long (median of the rounds' "
        f"ratios; each round's time on / off: {longer})"
    )
    return [
        Budget(
            "audit.rule_updates_per_second (API PATCH, trail on / off)",
            measured=on.rate(),
            baseline=off.rate(),
            unit="updates/s",
            goal=round(1 / GOAL_UPDATES_TIMES, 3),
            note=(
                f"p95 {percentile(on.latencies, 0.95):.1f} vs "
                f"{percentile(off.latencies, 0.95):.1f} ms; median of {ROUNDS} interleaved "
                f"rounds' ratios; goal: at most {GOAL_UPDATES_TIMES:g}x the time"
            ),
            paired=ratio,
        )
    ]


def _rule_events(rule_id: int) -> int:
    from controlplane.audit.models import AuditEvent

    return AuditEvent.objects.filter(
        object_type="alerting.alertrule", object_id=str(rule_id), action="updated"
    ).count()


@contextmanager
def _serving(database: str, trail: str) -> Iterator[str]:
    """gunicorn with the production configuration, one sync worker, serving
    `application` with the trail `trail`; yields its base URL once it answers."""
    from tests.services import free_port
    from tests.waiting import until_serving

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix=f"bench-audit-{trail}-") as var:
        env = {
            **os.environ,
            "DATABASE_URL": services.database_url(database),
            "VAR_DIR": var,
            "DEBUG": "false",
            "LOG_LEVEL": "WARNING",
            "CELERY_BROKER_URL": "memory://",
            "BIND": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": "1",
            TRAIL_VARIABLE: trail,
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        log = Path(var) / "gunicorn.log"
        with log.open("wb") as out:
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--config=deploy/gunicorn.conf.py",
                    "bench.audit:application",
                ],
                cwd=services.ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            until_serving(
                f"{base}/healthz", what=f"gunicorn (trail {trail})", process=server, log=log
            )
            yield base
        finally:
            services.stop([server])


def measure_retention(events: int) -> Retention:
    """Load `events` sealed events into each of two organisations' chains, then time
    the purge of the first against plain batched deletes of the second (module doc)."""
    from django.db import connection
    from django.utils import timezone

    from controlplane.audit import recorder, retention
    from controlplane.catalog.models import Organization

    with recorder._paused():  # the chains hold the loaded events alone, from seq 1
        org = Organization.objects.create(slug=ORGANIZATION + "-retention", name="Retention")
        other = Organization.objects.create(slug=BASELINE_ORGANIZATION, name="Baseline")
    now = timezone.now()
    days = retention.days_for(org.pk)["audit_events"]
    cutoff = now - timedelta(days=days)
    kept = max(1, int(events * KEPT_SHARE))
    began = time.perf_counter()
    load_events(org.pk, event_times(events, cutoff, kept))
    copy_chain(org.pk, other.pk)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) audit_auditevent")
    loaded = time.perf_counter() - began
    print(
        f"  {events:,} sealed events loaded for each of 2 organisations in {loaded:.1f} s "
        f"({days} days of retention, the newest {kept:,} kept)"
    )
    half = (events - kept) // 2
    deleted, first = plain_delete(other.pk, cutoff, through_seq=half)
    with _timing(retention, (VERIFYING, DELETING)) as spent:
        purged_at = time.perf_counter()
        removed = retention.purge(org, now)
        purge_seconds = time.perf_counter() - purged_at
    more, second = plain_delete(other.pk, cutoff, through_seq=None)
    purged = removed.get("audit_events", 0)
    if purged != events - kept or deleted + more != events - kept:
        raise RuntimeError(
            f"expected {events - kept:,} events removed each way; the purge removed {purged:,} "
            f"({removed}), the plain deletes {deleted + more:,}"
        )
    report = verify_chain(org.pk)
    if not report.ok:
        raise RuntimeError(f"the chain after the purge does not verify: {report.finding}")
    return Retention(
        events,
        purged,
        purge_seconds,
        deleted + more,
        first + second,
        loaded,
        verify_seconds=spent[VERIFYING],
        batches=int(spent[f"{DELETING} calls"]),
        batch_seconds=spent[DELETING],
    )


@contextmanager
def _timing(module: Any, names: Iterable[str]) -> Iterator[Counter]:
    """Seconds spent in (and calls of) the module's functions `names` while the block
    runs, as the module calls them: how the purge's time divides."""
    spent: Counter = Counter()
    originals = {name: getattr(module, name) for name in names}

    def timed(name: str, function: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - began
                spent[f"{name} calls"] += 1

        return call

    for name, function in originals.items():
        setattr(module, name, timed(name, function))
    try:
        yield spent
    finally:
        for name, function in originals.items():
            setattr(module, name, function)


def copy_chain(chain_id: int, organization_id: int) -> None:
    """The chain's events again, as another organisation's: the same rows (sizes,
    times, sequence numbers) for the baseline's plain deletes, which read no MAC, so
    none is computed again."""
    from django.db import connection

    kept = ", ".join(COLUMNS[2:])
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO audit_auditevent ({', '.join(COLUMNS)}) "
            f"SELECT %s, %s, {kept} FROM audit_auditevent WHERE chain = %s ORDER BY seq",
            [organization_id, organization_id, chain_id],
        )


def load_events(organization_id: int, times: Iterable[datetime]) -> None:
    """COPY the events in chunks, each chunk its own transaction, then set the head."""
    from django.db import connection, transaction

    from controlplane.audit.models import ChainHead
    from controlplane.audit.recorder import chain_key

    rows = sealed_rows(chain_key(), organization_id, times)
    statement = f"COPY audit_auditevent ({', '.join(COLUMNS)}) FROM STDIN"
    last = None
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            with cursor.cursor.copy(statement) as copy:
                written = 0
                for row in rows:
                    copy.write_row(row)
                    last = row
                    written += 1
                    if written == COPY_CHUNK:
                        break
        if written < COPY_CHUNK:
            break
    if last is not None:
        seq, digest = last[COLUMNS.index("seq")], last[COLUMNS.index("hash")]
        ChainHead.objects.update_or_create(
            chain=organization_id,
            defaults={"seq": seq, "hash": digest, "sealed_at": datetime.now(UTC)},
        )


def plain_delete(chain_id: int, cutoff: datetime, through_seq: int | None) -> tuple[int, float]:
    """The baseline: the chain's events older than `cutoff` (and at most `through_seq`)
    deleted BATCH at a time, oldest first, each batch in its own transaction under the
    retention job's setting, each batch picked after the last one's highest sequence
    number (so no batch walks past the index entries of the rows gone before it);
    returns rows deleted and seconds taken."""
    from django.db import connection, transaction

    statement = (
        "DELETE FROM audit_auditevent WHERE id IN (SELECT id FROM audit_auditevent "
        "WHERE chain = %s AND seq > %s AND seq <= %s AND at < %s ORDER BY seq LIMIT %s) "
        "RETURNING seq"
    )
    last = (1 << 62) if through_seq is None else through_seq
    after, deleted = 0, 0
    began = time.perf_counter()
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL controlplane.audit_retention = 'on'")
            cursor.execute(statement, [chain_id, after, last, cutoff, BATCH])
            gone = [seq for (seq,) in cursor.fetchall()]
        deleted += len(gone)
        if len(gone) < BATCH:
            return deleted, time.perf_counter() - began
        after = max(gone)


def verify_chain(chain_id: int):
    """chain.verify over what the table holds of the chain, against its head."""
    from controlplane.audit import chain
    from controlplane.audit.models import AuditEvent, ChainHead
    from controlplane.audit.recorder import chain_key

    head = ChainHead.objects.filter(chain=chain_id).values_list("seq", "hash").first()
    events = (
        chain.Sealed(e.pk, e.seq, e.prev_hash, e.hash, e.mac, e.content())
        for e in AuditEvent.objects.filter(chain=chain_id).order_by("seq").iterator()
    )
    return chain.verify(chain_id, events, chain_key(), head=head)


def _retention_budget(figures: Retention) -> list[Budget]:
    rest = figures.purge_seconds - figures.verify_seconds - figures.batch_seconds
    verify_share = figures.verify_seconds / figures.purge_seconds
    print(
        f"  retention.purge: {figures.purged:,} events in {figures.purge_seconds:.1f} s "
        f"({figures.purge_rate:,.0f} rows/s): what goes verified first in "
        f"{figures.verify_seconds:.1f} s, {figures.batches} batches of deletes in "
        f"{figures.batch_seconds:.1f} s ({figures.purged / figures.batch_seconds:,.0f} rows/s), "
        f"the rest (cut, receipt, seals, lock) {rest:.1f} s"
    )
    print(
        f"  plain batched DELETE: {figures.deleted:,} in {figures.delete_seconds:.1f} s "
        f"({figures.delete_rate:,.0f} rows/s)"
    )
    return [
        Budget(
            f"audit.retention_rows_per_second ({figures.events:,} events: purge / plain "
            f"batched DELETE)",
            measured=figures.purge_rate,
            baseline=figures.delete_rate,
            unit="rows/s",
            goal=GOAL_PURGE,
            note=f"batches of {BATCH:,}; verifying what goes takes {verify_share:.0%}",
        ),
        Budget(
            "audit.retention_delete_batches (the purge's batches alone / plain batched DELETE)",
            measured=figures.purged / figures.batch_seconds,
            baseline=figures.delete_rate,
            unit="rows/s",
            goal=GOAL_PURGE_DELETES,
            note=f"{figures.batches} batches, {figures.batch_seconds / figures.batches:.3f} s each",
        ),
    ]


if __name__ == "__main__":
    import bench.__main__  # noqa: F401  (the benches' environment)

    lines = run()
    print()
    for budget in lines:
        print(budget.line())
    raise SystemExit(0 if all(b.met for b in lines) else 1)
