"""manage.py audit_verify [--org SLUG]: walk each audit chain and report its first bad event.

Walks every organisation's chain, chain 0 (events of no organisation) and the chain of
any organisation deleted since (its trail outlives it), or with `--org` the one. Each
chain is read in sequence order as a stream, a chunk at a time, and checked by
`chain.verify` against its head, read first. Then its events not sealed yet: one
waiting longer than a minute means the sealer is lagging (a problem); one whose MAC
is wrong was written without the key (a problem at once); the others are on their way.

One line a chain: "ok: N events, sequence A..B", or the first bad event with its id,
sequence number, problem and detail. Exits with status 1 when a chain has a problem,
2 for an unknown organisation. It only reads: a broken chain is reported, never mended.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections, router, transaction
from django.utils import timezone

from controlplane.audit import chain
from controlplane.audit.models import AuditEvent, ChainHead, content_of
from controlplane.audit.recorder import chain_key
from controlplane.catalog.models import Organization

CHUNK = 2000
# How long an event may wait for its seal before it counts as a problem: the sealer
# runs right after each commit, and beat's backstop every minute; two periods, so an
# event whose seal was left to the backstop (a refusal rolled back with its caller's
# transaction on SQLite, a process gone after its commit) is not reported as stuck.
SEAL_GRACE_SECONDS = 120.0
COLUMNS = ("id", "seq", "prev_hash", "hash", "mac", *chain.CONTENT_FIELDS)


class Command(BaseCommand):
    help = (
        "Check the audit trail's hash chains and report the first event altered, removed "
        "or inserted in each; exits with status 1 if any chain has a problem."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", metavar="SLUG", help="the one organisation to check")

    def handle(self, *args: Any, org: str | None = None, **options: Any) -> None:
        names = chains(org)
        key = chain_key()
        broken = 0
        for chain_id, name in names.items():
            report, pending, late = walk(chain_id, key)
            finding = report.finding or late
            if finding is not None:
                broken += 1
                self.stdout.write(f"{name}: {finding}")
                continue
            line = f"{name}: ok: {report.checked} event{'' if report.checked == 1 else 's'}"
            if report.checked:
                line += f", sequence {report.first_seq}..{report.last_seq}"
            if pending:
                line += f" (and {pending} recorded in the last two minutes, not sealed yet)"
            self.stdout.write(line)
        if broken:
            raise CommandError(
                f"the audit trail has a problem in {broken} of {len(names)} "
                f"chain{'s' if len(names) != 1 else ''}",
                returncode=1,
            )


def chains(slug: str | None) -> dict[int, str]:
    """The chains to walk, each with the name a line gives it, in chain order."""
    if slug is not None:
        organization = Organization.objects.filter(slug=slug).first()
        if organization is None:
            raise CommandError(f"no organisation has the slug {slug!r}", returncode=2)
        return {organization.pk: f"{organization.slug} (chain {organization.pk})"}
    slugs = dict(Organization.objects.order_by().values_list("pk", "slug"))
    found = {0, *slugs}
    found.update(ChainHead.objects.values_list("chain", flat=True))
    found.update(AuditEvent.objects.order_by().values_list("chain", flat=True).distinct())
    return {
        chain_id: (
            "no organisation (chain 0)"
            if chain_id == 0
            else f"{slugs[chain_id]} (chain {chain_id})"
            if chain_id in slugs
            else f"deleted organisation (chain {chain_id})"
        )
        for chain_id in sorted(found)
    }


def walk(chain_id: int, key: bytes) -> tuple[chain.Report, int, chain.Finding | None]:
    """The chain's report, how many events wait for their seal within the grace, and
    the first unsealed event that is a problem."""
    # The head first: events sealed while the walk reads are then past it, and checked
    # like the rest (chain.verify).
    head = ChainHead.objects.filter(chain=chain_id).values_list("seq", "hash").first()
    with _streaming():
        sealed = (event for event, _ in _stored(chain_id, sealed=True))
        report = chain.verify(chain_id, sealed, key, head=head)
        pending, late = 0, None
        now = timezone.now()
        # Closed before the transaction ends: its server-side cursor lives in it.
        with contextlib.closing(_stored(chain_id, sealed=False)) as unsealed:
            for event, at in unsealed:
                waited = (now - at).total_seconds()
                late = chain.unsealed_finding(event, key, waited, SEAL_GRACE_SECONDS)
                if late is not None:
                    break
                pending += 1
    return report, pending, late


def _streaming() -> contextlib.AbstractContextManager[Any]:
    """PostgreSQL streams a query through a server-side cursor inside a transaction;
    SQLite reads one statement's snapshot as it goes, and a transaction there would
    take the write lock (transaction_mode IMMEDIATE) for the whole walk."""
    using = router.db_for_read(AuditEvent)
    if connections[using].vendor == "postgresql":
        return transaction.atomic(using=using)
    return contextlib.nullcontext()


def _stored(chain_id: int, sealed: bool) -> Iterator[tuple[chain.Sealed, datetime]]:
    """The chain's sealed events in sequence order, or its unsealed ones in the order
    they were written, each with its time."""
    rows = (
        AuditEvent.objects.filter(chain=chain_id, seq__isnull=not sealed)
        .order_by("seq" if sealed else "id")
        .values_list(*COLUMNS)
        .iterator(chunk_size=CHUNK)
    )
    for row in rows:
        values = dict(zip(COLUMNS, row, strict=True))
        event = chain.Sealed(
            id=values["id"],
            seq=values["seq"],
            prev_hash=values["prev_hash"],
            hash=values["hash"],
            mac=values["mac"],
            content=content_of({name: values[name] for name in chain.CONTENT_FIELDS}),
        )
        yield event, values["at"]
