"""The circuit breaker in front of every metric source: a source that keeps failing to
answer is not asked again until its backoff has passed, and then by one probe at a
time, at most one per organisation, so a dead or black-hole source holds no worker
beyond that probe and cannot stall other organisations' evaluations.

`backoff()` and `decide()` are pure; `admit()` and `record()` are the edge, each one
statement on the source's `SourceHealth` row. Sources' observed health (failing since,
last error) is `catalog.sources`'; this module writes only the breaker's fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from django.db import transaction
from django.db.models import Q

from controlplane.catalog.models import Organization, SourceHealth

FIRST_BACKOFF = timedelta(seconds=5)
LONGEST_BACKOFF = timedelta(minutes=1)
# A probe's hold on its source (and on its organisation's probe slot) outlives its
# query by this much, so a worker killed mid-probe frees the slot soon after.
PROBE_MARGIN = timedelta(seconds=5)

Verdict = Literal["ask", "probe", "wait"]


def backoff(failures: int) -> timedelta:
    """How long a source that failed `failures` times in a row is left alone: doubling
    from FIRST_BACKOFF, never past LONGEST_BACKOFF (a source that comes back is then
    found within a minute; `source.down` keeps counting meanwhile)."""
    if failures <= 0:
        return timedelta(0)
    return min(FIRST_BACKOFF * 2 ** min(failures - 1, 16), LONGEST_BACKOFF)


@dataclass(frozen=True)
class Circuit:
    failures: int = 0
    retry_at: datetime | None = None


def decide(circuit: Circuit, now: datetime) -> Verdict:
    """`ask` a closed circuit; `wait` while the backoff runs; then `probe`: one query
    that closes the circuit when it is answered, or opens it again for longer."""
    if circuit.failures == 0:
        return "ask"
    if circuit.retry_at is not None and now < circuit.retry_at:
        return "wait"
    return "probe"


@dataclass(frozen=True)
class Admission:
    asked: bool
    reason: str = ""  # why not, for the rules' last error


def admit(source_id: int, organization_id: int, timeout: float, now: datetime) -> Admission:
    """May this batch query the source now? A probe is claimed under a lock on the
    organisation's row, so of the batches due at once, across every source of the
    organisation, one probes and the others wait for its outcome."""
    row = (
        SourceHealth.objects.filter(source_id=source_id)
        .values_list("consecutive_failures", "retry_at")
        .first()
    )
    circuit = Circuit(*row) if row is not None else Circuit()
    verdict = decide(circuit, now)
    if verdict == "ask":
        return Admission(True)
    not_asked = (
        f"not asked: the source failed {circuit.failures} time"
        f"{'s' if circuit.failures != 1 else ''} in a row"
    )
    if verdict == "wait":
        return Admission(False, f"{not_asked}; next try at {circuit.retry_at:%H:%M:%S} UTC")
    with transaction.atomic():
        # Serialises the organisation's probe claims: two workers checking "nobody else
        # probes" at once would each see the other's claim uncommitted, and both probe.
        Organization.objects.select_for_update().filter(pk=organization_id).exists()
        probing = (
            SourceHealth.objects.filter(
                source__organization_id=organization_id, probe_until__gt=now
            )
            .exclude(source_id=source_id)
            .exists()
        )
        claimed = not probing and (
            SourceHealth.objects.filter(
                source_id=source_id,
                # What was read above, still: a probe recorded meanwhile moved them.
                consecutive_failures=circuit.failures,
                retry_at=circuit.retry_at,
            )
            .filter(Q(probe_until__isnull=True) | Q(probe_until__lte=now))
            .update(probe_until=now + timedelta(seconds=timeout) + PROBE_MARGIN)
        )
    if claimed:
        return Admission(True)
    return Admission(False, f"{not_asked}; another worker is probing its organisation's sources")


def record(source_id: int, answered: bool, now: datetime) -> None:
    """What the query taught: an answer closes the circuit, a timeout or an unreachable
    source opens it (again) for the next backoff. Healthy sources cost no write."""
    health = SourceHealth.objects.filter(source_id=source_id)
    if answered:
        health.filter(
            Q(consecutive_failures__gt=0) | Q(probe_until__isnull=False) | Q(retry_at__isnull=False)
        ).update(consecutive_failures=0, retry_at=None, probe_until=None)
        return
    failures = (health.values_list("consecutive_failures", flat=True).first() or 0) + 1
    # Compare-and-set on the count read: two batches failing at once count once more,
    # not twice, and the later backoff never shortens the earlier one.
    health.filter(consecutive_failures=failures - 1).update(
        consecutive_failures=failures, retry_at=now + backoff(failures), probe_until=None
    )
