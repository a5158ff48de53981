"""Removing what is older than its retention (policy.py): the core of `audit.retention.job`.

`plan()` says what would go, `purge()` removes it. Each category is removed in batches:
a batch of primary keys is picked (ordered, LIMIT the batch size) and deleted in a short
transaction of its own, so neither a lock nor a statement grows with the backlog and the
database keeps answering everyone else. A row is removed when its time is strictly
before the cutoff (now - days): a row exactly at the cutoff stays.

What each category removes, and what it never does:

- notifications: sent or given up (dead) ones, by creation time, once their alert is
  resolved and its timeline handed over (or for no alert: a channel test). Never one
  pending, sending or failed (due again): the escalation engine reads an open alert's
  notifications to know what it already sent, and would send it again.
- job_runs: finished runs (an outcome, and either a finish, no start, or past the time
  a late finish could still pair with it: jobs/runs.py), by creation time, their output
  excerpts with them. Never a monitor's last run, its last run that was not a missed
  one (the next ping compares with it), nor its newest success older than the cutoff
  (the age of its backup when the window starts). The runs an RPO or RTO objective
  measures stay for policy.SLO_WINDOW_DAYS at least.
- alerts: resolved ones, by resolution time, with their timelines and escalations. Never
  one with a timeline event its outbox consumers have not taken yet, nor one with a
  notification the notifications' retention keeps (the cascade would take it). The
  critical alerts of the services an RTO objective counts as incidents stay for
  policy.SLO_WINDOW_DAYS at least.
- slo_snapshots: by time (the SLO history thins them before; policy.py bounds the days).
- audit_events, last: a prefix of each chain only, up to the first sealed event at or
  after the cutoff. The chain is sealed, and what goes verified with the first event
  kept (a broken part is reported, never purged: that would erase the evidence; the
  rest is `audit_verify`'s to judge, so a purge reads what it removes, not the whole
  chain). Then a receipt naming the last sequence number going and its hash is written,
  committed and sealed, and only then are the events deleted. A purge stopped half-way
  leaves a chain that starts inside its receipt's range, which `audit_verify` accepts
  as a purge under way; the next purge finishes the receipt's deletes before anything
  else. On PostgreSQL each batch's transaction sets `controlplane.audit_retention`
  (migration 0002's trigger refuses a DELETE otherwise).

Every category that lost rows leaves an audit event (`retention.removed`) saying how
many, and the receipt says it for audit events. `purge(None, now)` purges the chain of
events of no organisation and the chains of deleted organisations, on the defaults.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connections, router, transaction
from django.db.models import Count, Exists, Max, Min, OuterRef, Q, QuerySet

from controlplane.alerting.models import Alert, AlertEvent, Severity
from controlplane.audit import chain, policy, sealing
from controlplane.audit.models import (
    AuditEvent,
    ChainHead,
    RetentionOverride,
    content_of,
    purging,
)
from controlplane.audit.recorder import chain_key, object_type_of, record
from controlplane.catalog.models import Organization
from controlplane.jobs.models import LONGEST_DURATION, JobRun
from controlplane.jobs.runs import PAIRING_WINDOW, UNFINISHED_MARGIN
from controlplane.paging.models import Notification
from controlplane.slo import objectives
from controlplane.slo.models import SLO, SLOSnapshot
from observability import tracing

log = logging.getLogger(__name__)

ACTOR = "system:audit.retention"
REMOVED_ACTION = "retention.removed"
BATCH_SIZE = 5000
# The order of a purge: notifications before the alerts they would hold back, audit
# events last, so that the events recording the other removals are in the chain first.
ORDER = ("notifications", "job_runs", "alerts", "slo_snapshots", "audit_events")
FINISHED_NOTIFICATIONS = (Notification.State.SENT, Notification.State.DEAD)
# Past this a run without a finish can no longer be paired with one (jobs/runs.py: the
# longest pairing window, twice the longest maximum duration, and the margin after it).
PAIRING_HORIZON = max(PAIRING_WINDOW, 2 * LONGEST_DURATION) + UNFINISHED_MARGIN
SLO_WINDOW = timedelta(days=policy.SLO_WINDOW_DAYS)
# Two purges of one chain at once would verify it while the other deletes from it.
_LOCK_CLASS = 0x61756469  # "audi"


@dataclass(frozen=True)
class Cut:
    """What one category loses at `now`: the rows strictly older than `cutoff`."""

    category: str
    cutoff: datetime
    rows: int
    days: int


class ChainBroken(RuntimeError):
    """The part of a chain a purge would remove fails verification: it stays, reported."""

    def __init__(self, chain_id: int, finding: chain.Finding | str) -> None:
        super().__init__(
            f"audit chain {chain_id} not purged, the part to remove is broken: {finding}"
        )
        self.chain = chain_id
        self.finding = finding


class PurgeBusy(RuntimeError):
    """Another purge of the same chain is running."""


# --- the policy of an organisation --------------------------------------------------------


def days_for(organization_id: int | None) -> dict[str, int]:
    """Days kept per category: the defaults, RETENTION_DAYS, then the organisation's
    overrides. Raises PolicyError for an override written past the model's checks."""
    base = policy.defaults(getattr(settings, "RETENTION_DAYS", None) or {})
    if organization_id is None:
        return base
    overrides = dict(
        RetentionOverride.objects.filter(organization_id=organization_id).values_list(
            "category", "days"
        )
    )
    try:
        return policy.with_overrides(base, overrides)
    except policy.PolicyError as error:
        raise policy.PolicyError(
            f"organisation #{organization_id}: {error}", field=error.field
        ) from None


def categories_of(organization_id: int | None) -> tuple[str, ...]:
    # Everything but the trail belongs to an organisation.
    return ORDER if organization_id is not None else ("audit_events",)


# --- what goes, per category: querysets, no side effect ------------------------------------


def _handed_over(alert_id: OuterRef) -> Exists:
    """Every timeline event of the alert taken by its outbox consumers."""
    return ~Exists(
        AlertEvent.objects.filter(alert_id=alert_id, dispatch=AlertEvent.Dispatch.PENDING)
    )


def doomed_notifications(organization_id: int, cutoff: datetime) -> QuerySet:
    settled_alert = Q(alert__state=Alert.State.RESOLVED) & _handed_over(OuterRef("alert_id"))
    return Notification.objects.filter(
        Q(alert__isnull=True) | settled_alert,
        organization_id=organization_id,
        state__in=FINISHED_NOTIFICATIONS,
        created_at__lt=cutoff,
    )


def _runs_going(cutoff: datetime) -> Q:
    """Runs of one monitor older than `cutoff` that no reader still needs."""
    same_monitor = JobRun.objects.filter(monitor_id=OuterRef("monitor_id"))
    newer = Q(created_at__gt=OuterRef("created_at")) | Q(
        created_at=OuterRef("created_at"), pk__gt=OuterRef("pk")
    )
    later_run = Exists(same_monitor.filter(newer))
    later_attended = Exists(same_monitor.exclude(outcome=JobRun.Outcome.MISSED).filter(newer))
    later_old_success = Exists(
        same_monitor.filter(newer, outcome=JobRun.Outcome.SUCCESS, created_at__lt=cutoff)
    )
    return (
        Q(created_at__lt=cutoff)
        & later_run
        & (Q(outcome=JobRun.Outcome.MISSED) | later_attended)
        & (~Q(outcome=JobRun.Outcome.SUCCESS) | later_old_success)
    )


def doomed_job_runs(organization_id: int, now: datetime, cutoff: datetime) -> QuerySet:
    finished = ~Q(outcome="") & (
        Q(finished_at__isnull=False)
        | Q(started_at__isnull=True)
        | Q(created_at__lt=now - PAIRING_HORIZON)
    )
    measured = Exists(SLO.objects.filter(job_id=OuterRef("monitor_id"), kind__in=objectives.KINDS))
    floor = min(cutoff, now - SLO_WINDOW)
    return JobRun.objects.filter(
        finished,
        (~measured & _runs_going(cutoff)) | (measured & _runs_going(floor)),
        monitor__organization_id=organization_id,
    )


def _incident_services(organization_id: int) -> set[str]:
    """The services whose critical alerts an RTO objective of the organisation counts."""
    found: set[str] = set()
    for services in SLO.objects.filter(
        organization_id=organization_id, kind=objectives.RTO
    ).values_list("incident_services", flat=True):
        found.update(str(slug) for slug in services or [])
    return found


def doomed_alerts(organization_id: int, now: datetime, days: dict[str, int]) -> QuerySet:
    cutoff = now - timedelta(days=days["alerts"])
    notifications_cutoff = now - timedelta(days=days["notifications"])
    kept_notification = Notification.objects.filter(alert_id=OuterRef("pk")).exclude(
        state__in=FINISHED_NOTIFICATIONS, created_at__lt=notifications_cutoff
    )
    alerts = Alert.objects.filter(
        _handed_over(OuterRef("pk")),
        ~Exists(kept_notification),
        organization_id=organization_id,
        state=Alert.State.RESOLVED,
        resolved_at__lt=cutoff,
    )
    floor = now - SLO_WINDOW
    services = _incident_services(organization_id)
    if services and floor < cutoff:
        alerts = alerts.exclude(
            severity=Severity.CRITICAL, service__slug__in=services, resolved_at__gte=floor
        )
    return alerts


def doomed_snapshots(organization_id: int, cutoff: datetime) -> QuerySet:
    return SLOSnapshot.objects.filter(slo__organization_id=organization_id, at__lt=cutoff)


def doomed(category: str, organization_id: int, now: datetime, days: dict[str, int]) -> QuerySet:
    """The rows of `category` the retention removes at `now` (not audit events)."""
    cutoff = now - timedelta(days=days[category])
    if category == "notifications":
        return doomed_notifications(organization_id, cutoff)
    if category == "job_runs":
        return doomed_job_runs(organization_id, now, cutoff)
    if category == "alerts":
        return doomed_alerts(organization_id, now, days)
    if category == "slo_snapshots":
        return doomed_snapshots(organization_id, cutoff)
    raise ValueError(f"no rows to remove for the category {category!r}")


# --- audit events: the chain's prefix ------------------------------------------------------


@dataclass(frozen=True)
class ChainCut:
    """The prefix of a chain that goes: sequence numbers up to `through_seq`."""

    through_seq: int
    last_hash: str
    removed: int
    oldest_at: datetime
    newest_at: datetime


def _sealed(chain_id: int) -> QuerySet:
    return AuditEvent.objects.filter(chain=chain_id, seq__isnull=False)


def chains_of(organization_id: int | None) -> list[int]:
    """The chains a purge of this organisation covers: its own; for None, the chain of
    no organisation and those of organisations deleted since (their trail outlives them)."""
    if organization_id is not None:
        return [organization_id]
    orphans = (
        ChainHead.objects.exclude(chain=0)
        .exclude(chain__in=Organization.objects.values("pk"))
        .order_by("chain")
        .values_list("chain", flat=True)
    )
    return [0, *orphans]


def unfinished_through(chain_id: int) -> int | None:
    """The last sequence number a receipt says was purged while events up to it remain:
    a purge stopped after its receipt. None when every receipt was carried out."""
    receipt = (
        _sealed(chain_id)
        .filter(action=chain.RECEIPT_ACTION)
        .order_by("-seq")
        .values_list("diff", flat=True)
        .first()
    )
    through = (receipt or {}).get("through_seq")
    if not isinstance(through, int):
        return None
    first = _sealed(chain_id).order_by("seq").values_list("seq", flat=True).first()
    return through if first is not None and first <= through else None


def chain_cut(chain_id: int, cutoff: datetime) -> ChainCut | None:
    """The sealed events before the first one at or after `cutoff`; None when none.

    A prefix, never a selection: an event older than the cutoff after a younger one
    stays until everything before it goes, so the rest of the chain stays linked.
    """
    sealed = _sealed(chain_id)
    first_kept = sealed.filter(at__gte=cutoff).order_by("seq").values_list("seq", flat=True).first()
    if first_kept is None:
        through = sealed.aggregate(last=Max("seq"))["last"]
        if through is None:
            return None
    else:
        through = first_kept - 1
    going = sealed.filter(seq__lte=through).aggregate(
        removed=Count("pk"), oldest=Min("at"), newest=Max("at")
    )
    if not going["removed"]:
        return None
    last_hash = sealed.filter(seq=through).values_list("hash", flat=True).first()
    if last_hash is None:
        raise ChainBroken(chain_id, f"sequence {through}, the last one to go, is missing")
    return ChainCut(through, last_hash, going["removed"], going["oldest"], going["newest"])


def rows_going(chain_id: int, cutoff: datetime) -> int:
    """How many events of the chain a purge at this cutoff removes (read only)."""
    cut = chain_cut(chain_id, cutoff)
    through = max(cut.through_seq if cut else 0, unfinished_through(chain_id) or 0)
    return _sealed(chain_id).filter(seq__lte=through).count() if through else 0


_COLUMNS = ("id", "seq", "prev_hash", "hash", "mac", *chain.CONTENT_FIELDS)


def _stream(chain_id: int, through_seq: int) -> Iterator[chain.Sealed]:
    rows = (
        _sealed(chain_id)
        .filter(seq__lte=through_seq)
        .order_by("seq")
        .values_list(*_COLUMNS)
        .iterator(chunk_size=2000)
    )
    for row in rows:
        yield chain.Sealed(
            id=row[0],
            seq=row[1],
            prev_hash=row[2],
            hash=row[3],
            mac=row[4],
            content=content_of(dict(zip(chain.CONTENT_FIELDS, row[5:], strict=True))),
        )


def _vouched(chain_id: int, through_seq: int, prev_hash: str, key: bytes) -> bool:
    """A genuine receipt of the chain says its events up to `through_seq` were purged,
    the last of them with the hash `prev_hash`."""
    receipts = (
        _sealed(chain_id)
        .filter(action=chain.RECEIPT_ACTION, diff__through_seq=through_seq)
        .values_list(*_COLUMNS)
    )
    for _, seq, previous, digest, mac, *values in receipts:
        content = content_of(dict(zip(chain.CONTENT_FIELDS, values, strict=True)))
        if (
            chain.content_mac(key, content) == mac
            and chain.link_hash(key, seq, previous, mac) == digest
            and content["diff"].get("last_hash") == prev_hash
        ):
            return True
    return False


def _fault(
    chain_id: int, event: chain.Sealed, previous: chain.Sealed | None, key: bytes
) -> tuple[str, str] | None:
    """(problem, detail) of an event on its own and linked to the one before, or None."""
    if event.content.get("chain") != chain_id:
        return "inserted", f"its content belongs to chain {event.content.get('chain')}"
    if chain.content_mac(key, event.content) != event.mac:
        return "altered", "its content no longer matches its MAC"
    if chain.link_hash(key, event.seq, event.prev_hash, event.mac) != event.hash:
        return "altered", "its link hash is not the key's"
    if previous is None:
        return None
    if event.seq != previous.seq + 1:
        return "removed", f"sequence {previous.seq + 1} to {event.seq - 1} missing"
    if event.prev_hash != previous.hash:
        return "inserted", f"does not link to event #{previous.id} before it"
    return None


def check_going(chain_id: int, through_seq: int, key: bytes) -> None:
    """Raise ChainBroken unless the events up to `through_seq`, and the first one kept,
    are a genuine start of the chain: removing them must not erase the evidence of
    tampering. The rest of the chain stays, for `audit_verify` to judge; this reads
    only what goes, so a night's purge costs what it removes, not the chain's length.

    Not chain.verify: the receipt that vouches for where the chain starts is usually
    past the part read (the previous purge wrote it at the end of the chain then).
    """
    previous = None
    for event in _stream(chain_id, through_seq + 1):
        fault = _fault(chain_id, event, previous, key)
        if fault is None and previous is None:
            if event.seq == 1 and event.prev_hash != chain.GENESIS:
                fault = "inserted", "the first event links to an event before it"
            elif event.seq != 1 and not _vouched(chain_id, event.seq - 1, event.prev_hash, key):
                fault = (
                    "removed",
                    (
                        f"the chain starts at sequence {event.seq} and no receipt says events "
                        f"1 to {event.seq - 1} were purged"
                    ),
                )
        if fault is not None:
            raise ChainBroken(chain_id, chain.Finding(event.id, event.seq, *fault))
        previous = event


def _set_retention(using: str, on: bool) -> None:
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # SET LOCAL: for this transaction only (migration 0002's trigger reads it).
            cursor.execute(
                "SELECT set_config('controlplane.audit_retention', %s, true)",
                ["on" if on else "off"],
            )


def delete_audit_batch(chain_id: int, through_seq: int, batch_size: int) -> int:
    """Delete the chain's next batch of events up to `through_seq` in a transaction of
    its own; returns how many went (0: none left)."""
    using = router.db_for_write(AuditEvent)
    with transaction.atomic(using=using):
        # The batch is a range of sequence numbers from the chain's first: bounded on both
        # sides, it is one short range of the (chain, seq) index however much of the
        # chain went before (an open lower end makes PostgreSQL, whose statistics still
        # count the rows deleted, scan the table for every batch).
        lowest = (
            _sealed(chain_id)
            .filter(seq__lte=through_seq)
            .order_by("seq")
            .values_list("seq", flat=True)
            .first()
        )
        if lowest is None:
            return 0
        upper = min(lowest + batch_size - 1, through_seq)
        _set_retention(using, True)
        with purging():
            deleted, _ = _sealed(chain_id).filter(seq__gte=lowest, seq__lte=upper).delete()
        # An enclosing transaction (a test's, a caller's) must not keep the permission.
        _set_retention(using, False)
    return deleted


def _delete_through(chain_id: int, through_seq: int, batch_size: int) -> int:
    removed = 0
    while True:
        deleted = delete_audit_batch(chain_id, through_seq, batch_size)
        removed += deleted
        if not deleted:
            return removed
        log.info(
            "audit events purged",
            extra={"chain": chain_id, "rows": deleted, "through_seq": through_seq},
        )


@contextmanager
def _exclusive(chain_id: int) -> Iterator[None]:
    """One purge of a chain at a time (PostgreSQL; SQLite serialises writers anyway)."""
    connection = connections[router.db_for_write(AuditEvent)]
    if connection.vendor != "postgresql":
        yield
        return
    key = (_LOCK_CLASS, chain_id % 2**31)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", key)
        if not cursor.fetchone()[0]:
            raise PurgeBusy(f"another purge of audit chain {chain_id} is running")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", key)


def purge_chain(chain_id: int, cutoff: datetime, batch_size: int = BATCH_SIZE) -> int:
    """Remove the chain's prefix older than `cutoff`, receipt first; returns the events
    removed (finishing an earlier purge's included)."""
    key = chain_key()
    with _exclusive(chain_id):
        sealing.seal(chain_id, key)
        removed = 0
        unfinished = unfinished_through(chain_id)
        if unfinished is not None:
            # Its receipt is in the chain already: carry it out before anything else.
            removed += _delete_through(chain_id, unfinished, batch_size)
        cut = chain_cut(chain_id, cutoff)
        if cut is None:
            return removed
        check_going(chain_id, cut.through_seq, key)
        with transaction.atomic(using=router.db_for_write(AuditEvent)):
            record(
                chain.RECEIPT_ACTION,
                organization_id=chain_id or None,
                object_type=object_type_of(AuditEvent),
                object_id=cut.through_seq,
                label=f"{cut.removed} audit events up to sequence {cut.through_seq} removed",
                diff=chain.receipt_content(
                    cut.through_seq,
                    cut.last_hash,
                    cut.removed,
                    cut.oldest_at.isoformat(),
                    cut.newest_at.isoformat(),
                ),
                actor=ACTOR,
            )
        # Sealed now, not only after the commit: the chain must hold the receipt, linked,
        # before its first event goes (and a caller's transaction may not commit yet).
        sealing.seal(chain_id, key)
        removed += _delete_through(chain_id, cut.through_seq, batch_size)
        return removed


def _purge_chains(chain_ids: list[int], cutoff: datetime, batch_size: int) -> int:
    """Purge each chain; one that cannot be purged (broken, busy) does not hold the
    others back, and is raised once they are done."""
    removed, failures = 0, []
    for chain_id in chain_ids:
        try:
            removed += purge_chain(chain_id, cutoff, batch_size)
        except (ChainBroken, PurgeBusy) as error:
            log.error("audit chain not purged: %s", error, extra={"chain": chain_id})
            failures.append(error)
    if failures:
        raise failures[0]
    return removed


# --- plan and purge -----------------------------------------------------------------------


def plan(organization: Organization | None, now: datetime) -> list[Cut]:
    """What a purge at `now` would remove, per category; removes nothing."""
    organization_id = organization.pk if organization is not None else None
    days = days_for(organization_id)
    cuts = []
    for category in categories_of(organization_id):
        cutoff = now - timedelta(days=days[category])
        if category == "audit_events":
            rows = sum(rows_going(chain_id, cutoff) for chain_id in chains_of(organization_id))
        else:
            rows = doomed(category, organization_id, now, days).count()
        cuts.append(Cut(category, cutoff, rows, days[category]))
    return cuts


def _remove_batches(rows: QuerySet, batch_size: int) -> tuple[int, Counter[str]]:
    """Delete `rows` in batches, each in its own transaction; returns how many of the
    model went and every model's count (what the cascades took)."""
    label = rows.model._meta.label
    using = router.db_for_write(rows.model)
    removed, everything = 0, Counter[str]()
    while True:
        with transaction.atomic(using=using):
            # Rows a worker holds (a delivery, a ping) are left for the next run.
            picked = rows.select_for_update(skip_locked=True, of=("self",))
            pks = list(picked.order_by("pk").values_list("pk", flat=True)[:batch_size])
            if not pks:
                break
            # The conditions again, in the statement that deletes: a row that changed
            # since it was picked (a notification retried) stays.
            _, counts = rows.filter(pk__in=pks).delete()
        deleted = counts.get(label, 0)
        removed += deleted
        everything.update(counts)
        log.info("retention removed a batch", extra={"model": label, "rows": deleted})
        if len(pks) < batch_size or not deleted:
            break
    return removed, everything


def _record_removal(
    organization_id: int, category: str, model: Any, cut: Cut, counts: Counter[str]
) -> None:
    label = model._meta.label
    with_them = {name: count for name, count in sorted(counts.items()) if name != label}
    diff: dict[str, Any] = {
        "category": category,
        "days": cut.days,
        "cutoff": cut.cutoff.isoformat(),
        "removed": cut.rows,
    }
    if with_them:
        diff["with_them"] = with_them
    with transaction.atomic(using=router.db_for_write(AuditEvent)):
        record(
            REMOVED_ACTION,
            organization_id=organization_id,
            object_type=object_type_of(model),
            label=f"{cut.rows} {category.replace('_', ' ')} older than {cut.days} days removed",
            diff=diff,
            actor=ACTOR,
        )


def purge(
    organization: Organization | None, now: datetime, batch_size: int = BATCH_SIZE
) -> dict[str, int]:
    """Remove what is older than its retention at `now`; returns rows removed per category.

    Audit events go last. Raises ChainBroken (after the other categories are done)
    when a chain fails verification, PurgeBusy when another purge holds a chain.
    """
    if batch_size < 1:
        raise ValueError(f"the batch size must be at least 1, got {batch_size}")
    organization_id = organization.pk if organization is not None else None
    days = days_for(organization_id)
    removed: dict[str, int] = {}
    for category in categories_of(organization_id):
        cutoff = now - timedelta(days=days[category])
        with tracing.span(
            "audit.retention.category",
            {"app.retention.category": category, "app.retention.days": days[category]},
        ) as span:
            if category == "audit_events":
                count = _purge_chains(chains_of(organization_id), cutoff, batch_size)
            else:
                rows = doomed(category, organization_id, now, days)
                count, counts = _remove_batches(rows, batch_size)
                if count:
                    cut = Cut(category, cutoff, count, days[category])
                    _record_removal(organization_id, category, rows.model, cut, counts)
            span.set_attribute("app.retention.rows", count)
        removed[category] = count
    return removed
