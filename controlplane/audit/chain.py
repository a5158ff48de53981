"""The hash chain that makes the audit trail tamper-evident. Pure: no database, no clock.

Each event is written with a MAC over its content (`content_mac`), keyed by a secret
the database does not hold, in the transaction of the change it records: no lock is
taken there, so recording never serialises two edits. Right after the commit a sealer
links the organisation's new events into its chain, one after the other: each gets the
next sequence number, the hash of the event before it, and its own hash over that link
and its MAC (`link_hash`). A byte changed in an event breaks its MAC; an event removed
leaves a gap in the sequence and a broken link; an event inserted has no valid MAC, or
takes a number already taken, or breaks the link of the one after it.

The retention job removes the oldest events of a chain, a prefix, and leaves a receipt
event (`RECEIPT_ACTION`) naming the last sequence number removed and that event's hash,
so the chain that remains still starts from something the key vouches for.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GENESIS = ""  # the hash "before" an organisation's first event
RECEIPT_ACTION = "retention.purged"

# What the MAC covers: everything an event says, nothing the sealer adds.
CONTENT_FIELDS = (
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
)


def canonical(content: Mapping[str, Any]) -> bytes:
    """One byte string per content, whatever the key order or the database's JSON."""
    missing = [name for name in CONTENT_FIELDS if name not in content]
    if missing:
        raise ValueError(f"audit content lacks {', '.join(missing)}")
    ordered = {name: content[name] for name in CONTENT_FIELDS}
    return json.dumps(
        ordered, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def content_mac(key: bytes, content: Mapping[str, Any]) -> str:
    return hmac.new(key, b"content\x00" + canonical(content), hashlib.sha256).hexdigest()


def mac_matches(key: bytes, content: Mapping[str, Any], mac: str) -> bool:
    """Whether `mac` is the key's MAC of `content`. Content that cannot be read as an
    event's (a row written by hand: NaN in its JSON, a field missing) matches nothing.
    A plain comparison: nobody can time it, and a forged MAC may hold any character."""
    try:
        return content_mac(key, content) == mac
    except (ValueError, TypeError):
        return False


def link_hash(key: bytes, seq: int, prev_hash: str, mac: str) -> str:
    message = f"link\x00{seq}\x00{prev_hash}\x00{mac}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Sealed:
    """One event as stored: its content and the chain fields the sealer wrote."""

    id: int
    seq: int | None
    prev_hash: str
    hash: str
    mac: str
    content: Mapping[str, Any]

    @property
    def is_receipt(self) -> bool:
        return self.content.get("action") == RECEIPT_ACTION


@dataclass(frozen=True)
class Finding:
    """The first thing wrong with a chain: which event, and what is wrong with it."""

    event_id: int | None
    seq: int | None
    problem: str  # "altered", "removed", "inserted", "unsealed"
    detail: str

    def __str__(self) -> str:
        where = f"event #{self.event_id}" if self.event_id is not None else "the chain"
        at = f" (sequence {self.seq})" if self.seq is not None else ""
        return f"{where}{at}: {self.problem}: {self.detail}"


@dataclass(frozen=True)
class Report:
    chain: int
    checked: int
    first_seq: int | None
    last_seq: int | None
    finding: Finding | None

    @property
    def ok(self) -> bool:
        return self.finding is None


def receipt_content(
    through_seq: int, last_hash: str, removed: int, oldest_at: str, newest_at: str
) -> dict[str, Any]:
    """The `diff` of a receipt event: what one purge removed from the chain's start."""
    return {
        "through_seq": through_seq,
        "last_hash": last_hash,
        "removed": removed,
        "oldest_at": oldest_at,
        "newest_at": newest_at,
    }


def verify(
    chain: int, events: Iterable[Sealed], key: bytes, head: tuple[int, str] | None = None
) -> Report:
    """Walk one chain's sealed events in sequence order and report the first bad one.

    `events` must be ordered by `seq` and hold sealed events only (one pass: a
    generator over a million rows is fine). A chain may start after 1 only where a
    receipt in it says the events before were purged, and the first remaining event
    must link to the hash that receipt names. `head` is the sealer's record of the
    chain's last (sequence, hash), read before the events: the chain must reach it
    and hold that hash there, so events removed from the end show. Events sealed
    after the head was read are checked like any other.

    The receipt vouching for the start may come anywhere later in the chain, so the
    walk reads to the end even past a finding: a start no receipt vouches for is the
    first bad event of all. The retention job seals its receipt before it deletes, in
    batches: a chain may start inside the range a receipt names (a purge under way, or
    cut short), and is whole if it reaches that range's end with the receipt's hash.
    """
    checked = 0
    first_seq = last_seq = None
    previous: Sealed | None = None
    start: Sealed | None = None
    found: Finding | None = None
    receipts: dict[int, set[str]] = {}
    # From a start after 1, what each event's hash begins with, by its place in the walk
    # (8 bytes an event): where a purge under way stopped is known only at its receipt.
    walked = array("Q")
    for event in events:
        checked += 1
        if found is None:
            found = _event_finding(chain, event, key, previous) or _head_finding(event, head)
            if found is None:
                start = start or event
                first_seq = start.seq
                previous, last_seq = event, event.seq
                if start.seq != 1:
                    walked.append(_prefix(event.hash) or 0)
        receipt = _receipt(event, key)
        if receipt is not None:
            receipts.setdefault(receipt[0], set()).add(receipt[1])
    found = _start_finding(start, receipts, walked) or found
    if found is None and head is not None and head[0] > (last_seq or 0):
        found = _truncated(previous, head)
    return Report(chain, checked, first_seq, last_seq, found)


def _genuine(event: Sealed, key: bytes) -> tuple[bool, bool]:
    """Whether the key vouches for the event's content (its MAC) and for its place in
    the chain (its link hash over sequence number, previous hash and MAC)."""
    mac_ok = mac_matches(key, event.content, event.mac)
    link_ok = (
        event.seq is not None
        and link_hash(key, event.seq, event.prev_hash, event.mac) == event.hash
    )
    return mac_ok, link_ok


def _event_finding(
    chain: int, event: Sealed, key: bytes, previous: Sealed | None
) -> Finding | None:
    """What is wrong with one event on its own, and with its link to the one before."""

    def finding(problem: str, detail: str) -> Finding:
        return Finding(event.id, event.seq, problem, detail)

    if event.seq is None:
        return finding("unsealed", "not linked into the chain")
    if event.content.get("chain") != chain:
        return finding("inserted", f"its content belongs to chain {event.content.get('chain')}")
    mac_ok, link_ok = _genuine(event, key)
    if not mac_ok and not link_ok:
        return finding(
            "inserted",
            "neither its content nor its link verifies with the key: written without it",
        )
    if not mac_ok:
        return finding("altered", "its content was changed after it was sealed")
    if not link_ok:
        return finding(
            "altered",
            "its sequence number or links were changed after it was sealed (moved or relinked)",
        )
    if previous is None:
        return None
    assert previous.seq is not None  # the walk keeps sealed events only
    if event.seq == previous.seq:
        return finding(
            "inserted", f"sequence {event.seq} is taken twice (also by event #{previous.id})"
        )
    if event.seq < previous.seq:
        return finding("altered", f"out of sequence order: it comes after {previous.seq}")
    if event.seq != previous.seq + 1:
        missing = (
            f"sequence {previous.seq + 1}"
            if event.seq == previous.seq + 2
            else f"sequence {previous.seq + 1} to {event.seq - 1}"
        )
        return finding("removed", f"{missing} missing after event #{previous.id}")
    if event.prev_hash != previous.hash:
        return finding(
            "inserted",
            f"does not link to event #{previous.id} before it (an event was put in, "
            "or one was replaced)",
        )
    return None


def _head_finding(event: Sealed, head: tuple[int, str] | None) -> Finding | None:
    if head is None or event.seq != head[0] or event.hash == head[1]:
        return None
    return Finding(
        event.id,
        event.seq,
        "altered",
        "not the event the sealer sealed at this sequence number (the chain head says another)",
    )


def _receipt(event: Sealed, key: bytes) -> tuple[int, str] | None:
    """(through_seq, last_hash) of a genuine receipt event, else None."""
    if not event.is_receipt or event.seq is None or not all(_genuine(event, key)):
        return None
    diff = event.content.get("diff") or {}
    through = diff.get("through_seq") if isinstance(diff, Mapping) else None
    if not isinstance(through, int) or isinstance(through, bool) or through >= event.seq:
        return None
    return through, str(diff.get("last_hash", ""))


def _prefix(digest: str) -> int | None:
    try:
        return int(digest[:16], 16)
    except ValueError:
        return None


def _start_finding(
    start: Sealed | None, receipts: Mapping[int, set[str]], walked: Sequence[int]
) -> Finding | None:
    """The chain's first event: sequence 1 from nothing, or where a receipt says."""
    if start is None or start.seq is None:
        return None
    if start.seq == 1:
        if start.prev_hash == GENESIS:
            return None
        return Finding(
            start.id, start.seq, "inserted", "the first event links to an event before it"
        )
    vouched = receipts.get(start.seq - 1)
    if vouched is None and _purge_under_way(start.seq, receipts, walked):
        return None
    if vouched is None:
        return Finding(
            start.id,
            start.seq,
            "removed",
            f"the chain starts at sequence {start.seq} and no receipt says events 1 to "
            f"{start.seq - 1} were purged",
        )
    if start.prev_hash not in vouched:
        return Finding(
            start.id,
            start.seq,
            "removed",
            "the purge receipt names another last hash than the first event links to",
        )
    return None


def _purge_under_way(start: int, receipts: Mapping[int, set[str]], walked: Sequence[int]) -> bool:
    """Whether a receipt names a range the chain starts inside, and the walk from the
    start reached that range's end with the hash the receipt names: what is left of
    the range is what the purge has yet to delete. A walk that broke before the range's
    end cannot tell; what broke it is the finding then."""
    for through, hashes in receipts.items():
        place = through - start
        if place >= len(walked) or (place >= 0 and walked[place] in map(_prefix, hashes)):
            return True
    return False


def _truncated(last: Sealed | None, head: tuple[int, str]) -> Finding:
    """Events missing at the end: the sealer sealed further than the chain now goes."""
    if last is None or last.seq is None:
        return Finding(
            None, 1, "removed", f"no event left, though the chain was sealed up to {head[0]}"
        )
    missing = (
        f"sequence {head[0]}"
        if head[0] == last.seq + 1
        else f"sequence {last.seq + 1} to {head[0]}"
    )
    return Finding(
        None,
        last.seq + 1,
        "removed",
        f"{missing} missing at the end, after event #{last.id}: the chain was sealed up "
        f"to {head[0]}",
    )


def unsealed_finding(event: Sealed, key: bytes, waited: float, grace: float) -> Finding | None:
    """An event not linked yet: pending while the sealer may still be on its way (None),
    a problem once it has waited longer than `grace` seconds, and at once when its MAC
    is wrong, as the sealer never links such a row: it was written without the key (or
    changed before its seal)."""
    if not mac_matches(key, event.content, event.mac):
        return Finding(
            event.id,
            None,
            "inserted",
            "not sealed, and its content does not match its MAC: written without the key, "
            "so the sealer leaves it out",
        )
    if waited <= grace:
        return None
    return Finding(
        event.id,
        None,
        "unsealed",
        f"recorded {_duration(waited)} ago and still not linked into the chain: the sealer "
        "is lagging or stopped (is beat running audit.seal_events?)",
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} seconds"
    if seconds < 7200:
        return f"{seconds / 60:.0f} minutes"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} hours"
    return f"{seconds / 86400:.0f} days"
