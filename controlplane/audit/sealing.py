"""Linking freshly recorded events into their organisation's chain (see chain.py).

Runs right after each commit that recorded events (recorder.schedule_seal), and from beat
as a backstop (`audit.seal_events`) for a process that died between its commit and the
seal. One sealer at a time per chain: it holds the chain head's row lock.
"""

from __future__ import annotations

import logging

from django.db import models, transaction
from django.utils import timezone

from controlplane.audit import chain
from controlplane.audit.models import AuditEvent, ChainHead

log = logging.getLogger(__name__)
BATCH = 500


def head_for_update(chain_id: int) -> ChainHead:
    ChainHead.objects.bulk_create([ChainHead(chain=chain_id)], ignore_conflicts=True)
    return ChainHead.objects.select_for_update().get(chain=chain_id)


def seal(chain_id: int, key: bytes | None = None) -> int:
    """Seal the chain's unsealed events in the order they were written; returns how many.

    An event whose MAC is wrong (written straight into the table, without the key) is
    left unsealed and logged: `audit_verify` reports it. The walk goes on past such
    events by id, in batches of `BATCH`, each batch in its own short transaction, so
    forged rows can neither stop the events behind them from being sealed nor keep
    the sealer going round.
    """
    from controlplane.audit.recorder import chain_key

    key = key or chain_key()
    sealed = 0
    after = 0
    while True:
        with transaction.atomic():
            head = head_for_update(chain_id)
            pending = list(
                AuditEvent.objects.filter(chain=chain_id, seq__isnull=True, id__gt=after).order_by(
                    "id"
                )[:BATCH]
            )
            linked = 0
            for event in pending:
                after = event.pk
                if not chain.mac_matches(key, event.content(), event.mac):
                    log.error(
                        "audit event not sealed: its MAC is wrong",
                        extra={"audit_event": event.pk, "chain": chain_id},
                    )
                    continue
                seq = head.seq + 1
                digest = chain.link_hash(key, seq, head.hash, event.mac)
                # The one update the table allows (models.py, migration 0002).
                updated = models.QuerySet.update(
                    AuditEvent.objects.filter(pk=event.pk, seq__isnull=True),
                    seq=seq,
                    prev_hash=head.hash,
                    hash=digest,
                )
                if updated:  # else sealed meanwhile by a sealer not holding the head
                    head.seq, head.hash = seq, digest
                    linked += 1
            if linked:
                head.sealed_at = timezone.now()
                head.save(update_fields=["seq", "hash", "sealed_at"])
        sealed += linked
        if len(pending) < BATCH:
            return sealed


def seal_all() -> int:
    """Every chain with events waiting: the backstop."""
    chains = (
        AuditEvent.objects.filter(seq__isnull=True)
        .values_list("chain", flat=True)
        .distinct()
        .order_by()
    )
    return sum(seal(chain_id) for chain_id in list(chains))
