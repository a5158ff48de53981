"""The hash chain on its own (controlplane/audit/chain.py): no database, a table of
chains as a tamperer without the key could leave them, and what `verify` says."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from controlplane.audit import chain
from controlplane.audit.chain import GENESIS, RECEIPT_ACTION, Sealed

KEY = b"a test chain key, 32 bytes long!"
CHAIN = 7
FORGED = "f0" * 32


def content(number: int, action: str = "updated", diff: Any = None) -> dict[str, Any]:
    return {
        "chain": CHAIN,
        "organization_id": CHAIN,
        "at": f"2026-03-01T12:00:{number % 60:02d}.000001+00:00",
        "actor": "user:p_0123456789abcdef",
        "action": action,
        "object_type": "alerting.alertrule",
        "object_id": str(number),
        "object_label": f"rule {number}",
        "diff": {"threshold": {"from": number, "to": number + 0.5}} if diff is None else diff,
        "request_id": f"req-{number}",
        "trace_id": "ab" * 16,
    }


def link(events: list[Sealed], body: dict[str, Any], key: bytes = KEY) -> list[Sealed]:
    """`events` and one more, sealed onto the end as the sealer does with `key`."""
    previous = events[-1] if events else None
    seq = previous.seq + 1 if previous else 1
    prev_hash = previous.hash if previous else GENESIS
    mac = chain.content_mac(key, body)
    event = Sealed(1000 + seq, seq, prev_hash, chain.link_hash(key, seq, prev_hash, mac), mac, body)
    return [*events, event]


def sealed(count: int) -> list[Sealed]:
    events: list[Sealed] = []
    for number in range(1, count + 1):
        events = link(events, content(number))
    return events


def receipt(
    events: list[Sealed], through: int, last_hash: str | None = None, deleted: int | None = None
) -> list[Sealed]:
    """Seal a receipt for events 1..`through` onto the end and delete them (the first
    `deleted` of them only: a purge under way)."""
    purged = {event.seq: event for event in events if event.seq <= through}
    kept = [event for event in events if event.seq > (through if deleted is None else deleted)]
    diff = chain.receipt_content(
        through_seq=through,
        last_hash=purged[through].hash if last_hash is None else last_hash,
        removed=len(purged),
        oldest_at=purged[min(purged)].content["at"],
        newest_at=purged[through].content["at"],
    )
    # The receipt takes the next number of the whole chain, kept events or not.
    return [*kept, *link(events, content(99, RECEIPT_ACTION, diff))[-1:]]


def forge(event: Sealed, **changes: Any) -> Sealed:
    return dataclasses.replace(event, **changes)


def with_content(event: Sealed, **changes: Any) -> Sealed:
    return forge(event, content={**event.content, **changes})


def swap_seq(events: list[Sealed], a: int, b: int) -> list[Sealed]:
    """Events `a` and `b` trade sequence numbers (links left as sealed), then read in
    sequence order, as the database returns them."""
    first, second = events[a - 1], events[b - 1]
    changed = {first.id: forge(first, seq=second.seq), second.id: forge(second, seq=first.seq)}
    return sorted((changed.get(e.id, e) for e in events), key=lambda e: e.seq)


def ids(events: list[Sealed]) -> dict[int, int]:
    return {event.seq: event.id for event in events}


SIX = sealed(6)
ID = ids(SIX)

# name: (what the tamperer leaves: events and head, expected (problem, event id, seq, detail))
Case = tuple[Callable[[], tuple[list[Sealed], tuple[int, str] | None]], Any]
CASES: dict[str, Case] = {
    "intact": (lambda: (SIX, (6, SIX[-1].hash)), None),
    "intact, head read before the last two were sealed": (lambda: (SIX, (4, SIX[3].hash)), None),
    "empty": (lambda: ([], None), None),
    "empty, never sealed": (lambda: ([], (0, "")), None),
    "one byte of a label": (
        lambda: ([*SIX[:2], with_content(SIX[2], object_label="rule 4"), *SIX[3:]], None),
        ("altered", ID[3], 3, "its content was changed after it was sealed"),
    ),
    "a number in the diff": (
        lambda: (
            [*SIX[:4], with_content(SIX[4], diff={"threshold": {"from": 5, "to": 9.5}}), SIX[5]],
            None,
        ),
        ("altered", ID[5], 5, "its content was changed after it was sealed"),
    ),
    "the time, by a microsecond": (
        lambda: ([with_content(SIX[0], at="2026-03-01T12:00:01.000002+00:00"), *SIX[1:]], None),
        ("altered", ID[1], 1, "its content was changed after it was sealed"),
    ),
    "its MAC made to match changed content, with another key": (
        lambda: (
            [
                *SIX[:2],
                forge(
                    with_content(SIX[2], actor="user:p_ffffffffffffffff"),
                    mac=chain.content_mac(
                        b"x" * 32, {**SIX[2].content, "actor": "user:p_ffffffffffffffff"}
                    ),
                ),
                *SIX[3:],
            ],
            None,
        ),
        ("inserted", ID[3], 3, "neither its content nor its link verifies with the key"),
    ),
    "a MAC of characters no MAC has": (
        lambda: ([*SIX[:2], forge(SIX[2], mac="é" * 64), *SIX[3:]], None),
        ("inserted", ID[3], 3, "neither its content nor its link verifies with the key"),
    ),
    "JSON no event can hold (NaN)": (
        lambda: ([*SIX[:2], with_content(SIX[2], diff={"x": float("nan")}), *SIX[3:]], None),
        ("altered", ID[3], 3, "its content was changed after it was sealed"),
    ),
    "a link hash": (
        lambda: ([*SIX[:3], forge(SIX[3], hash=FORGED), *SIX[4:]], None),
        ("altered", ID[4], 4, "its sequence number or links were changed"),
    ),
    "the middle event removed": (
        lambda: ([*SIX[:2], *SIX[3:]], (6, SIX[-1].hash)),
        ("removed", ID[4], 4, f"sequence 3 missing after event #{ID[2]}"),
    ),
    "two middle events removed": (
        lambda: ([*SIX[:1], *SIX[3:]], (6, SIX[-1].hash)),
        ("removed", ID[4], 4, f"sequence 2 to 3 missing after event #{ID[1]}"),
    ),
    "the first event removed": (
        lambda: (SIX[1:], (6, SIX[-1].hash)),
        ("removed", ID[2], 2, "the chain starts at sequence 2 and no receipt says events 1 to 1"),
    ),
    "the last event removed": (
        lambda: (SIX[:5], (6, SIX[-1].hash)),
        ("removed", None, 6, f"sequence 6 missing at the end, after event #{ID[5]}"),
    ),
    "the last two events removed": (
        lambda: (SIX[:4], (6, SIX[-1].hash)),
        ("removed", None, 5, "sequence 5 to 6 missing at the end"),
    ),
    # What the head is for: without it, a chain cut short looks whole.
    "the last event removed, no head to tell": (lambda: (SIX[:5], None), None),
    "every event removed": (
        lambda: ([], (6, SIX[-1].hash)),
        ("removed", None, 1, "no event left, though the chain was sealed up to 6"),
    ),
    "an event inserted in the middle with a forged hash": (
        lambda: (
            [
                *SIX[:3],
                Sealed(666, 4, SIX[2].hash, FORGED, FORGED, content(4, "deleted")),
                *SIX[3:],
            ],
            None,
        ),
        ("inserted", 666, 4, "neither its content nor its link verifies with the key"),
    ),
    "an event inserted at the end with a forged hash": (
        lambda: ([*SIX, Sealed(666, 7, SIX[-1].hash, FORGED, FORGED, content(7))], None),
        ("inserted", 666, 7, "written without it"),
    ),
    "an event sealed with another key": (
        lambda: (link(SIX, content(7), key=b"y" * 32), (6, SIX[-1].hash)),
        ("inserted", 1007, 7, "written without it"),
    ),
    "an event copied in under a number taken": (
        lambda: ([*SIX[:4], forge(SIX[3], id=667), *SIX[4:]], None),
        ("inserted", 667, 4, f"sequence 4 is taken twice (also by event #{ID[4]})"),
    ),
    "an event of another chain": (
        lambda: ([*SIX[:2], with_content(SIX[2], chain=8), *SIX[3:]], None),
        ("inserted", ID[3], 3, "its content belongs to chain 8"),
    ),
    "two events swapped (their sequence numbers traded)": (
        lambda: (swap_seq(SIX, 3, 4), (6, SIX[-1].hash)),
        ("altered", ID[4], 3, "its sequence number or links were changed"),
    ),
    "two events swapped (their contents traded)": (
        lambda: (
            [
                *SIX[:2],
                forge(SIX[2], content=SIX[3].content, mac=SIX[3].mac),
                forge(SIX[3], content=SIX[2].content, mac=SIX[2].mac),
                *SIX[4:],
            ],
            None,
        ),
        ("altered", ID[3], 3, "its sequence number or links were changed"),
    ),
    "read out of order": (
        lambda: ([SIX[0], SIX[2], SIX[1], *SIX[3:]], None),
        ("removed", ID[3], 3, f"sequence 2 missing after event #{ID[1]}"),
    ),
    "head names another last hash": (
        lambda: (SIX, (6, FORGED)),
        ("altered", ID[6], 6, "not the event the sealer sealed at this sequence number"),
    ),
    "an unsealed event in the walk": (
        lambda: ([*SIX[:2], forge(SIX[2], seq=None, prev_hash="", hash="")], None),
        ("unsealed", ID[3], None, "not linked into the chain"),
    ),
    # Purges: the retention job removes a prefix and seals a receipt onto the end.
    "a purged prefix with its receipt": (
        lambda: (receipt(SIX, through=3), (7, receipt(SIX, through=3)[-1].hash)),
        None,
    ),
    "everything purged but the receipt": (lambda: (receipt(SIX, through=6), None), None),
    "two purges, two receipts": (
        lambda: (receipt(receipt(SIX, through=2), through=4), None),
        None,
    ),
    "a purge under way: its receipt sealed, part of its range deleted": (
        lambda: (receipt(SIX, through=4, deleted=2), None),
        None,
    ),
    "a purge under way, its receipt naming another hash": (
        lambda: (receipt(SIX, through=4, last_hash=SIX[1].hash, deleted=2), None),
        ("removed", ID[3], 3, "no receipt says events 1 to 2 were purged"),
    ),
    "a purge under way, an event left in its range altered": (
        lambda: (
            [
                SIX[2],
                with_content(SIX[3], object_label="x"),
                *receipt(SIX, through=4, deleted=2)[2:],
            ],
            None,
        ),
        ("altered", ID[4], 4, "its content was changed after it was sealed"),
    ),
    "a purged prefix without a receipt": (
        lambda: (SIX[3:], None),
        ("removed", ID[4], 4, "no receipt says events 1 to 3 were purged"),
    ),
    "a receipt with the wrong last hash": (
        lambda: (receipt(SIX, through=3, last_hash=SIX[1].hash), None),
        ("removed", ID[4], 4, "the purge receipt names another last hash"),
    ),
    "a receipt for fewer events than are gone": (
        lambda: (receipt(SIX, through=3)[1:], None),
        ("removed", ID[5], 5, "no receipt says events 1 to 4 were purged"),
    ),
    "a receipt written without the key": (
        lambda: (
            [*SIX[3:], with_content(receipt(SIX, through=3)[-1], object_label="forged")],
            None,
        ),
        ("removed", ID[4], 4, "no receipt says events 1 to 3 were purged"),
    ),
    # The start comes first, though the walk learns only at the receipt that it is bad.
    "an unvouched start before an altered event": (
        lambda: (
            [*SIX[3:5], with_content(SIX[5], object_label="x"), *receipt(SIX, 2)[-1:]],
            None,
        ),
        ("removed", ID[4], 4, "no receipt says events 1 to 3 were purged"),
    ),
}


@pytest.mark.parametrize(("name"), list(CASES))
def test_verify_reports_the_first_bad_event(name):
    make, expected = CASES[name]
    events, head = make()

    report = chain.verify(CHAIN, iter(events), KEY, head=head)

    assert report.checked == len(events)
    if expected is None:
        assert report.ok, report.finding
        return
    problem, event_id, seq, detail = expected
    finding = report.finding
    assert finding is not None, "verify found nothing wrong"
    assert (finding.problem, finding.event_id, finding.seq) == (problem, event_id, seq), finding
    assert detail in finding.detail


def test_an_intact_chain_reports_its_range_and_a_receipt_makes_the_rest_valid():
    purged = receipt(SIX, through=3)

    whole = chain.verify(CHAIN, SIX, KEY, head=(6, SIX[-1].hash))
    rest = chain.verify(CHAIN, purged, KEY, head=(7, purged[-1].hash))

    assert (whole.ok, whole.checked, whole.first_seq, whole.last_seq) == (True, 6, 1, 6)
    assert (rest.ok, rest.checked, rest.first_seq, rest.last_seq) == (True, 4, 4, 7)
    assert purged[-1].is_receipt
    assert purged[-1].content["diff"] == {
        "through_seq": 3,
        "last_hash": SIX[2].hash,
        "removed": 3,
        "oldest_at": SIX[0].content["at"],
        "newest_at": SIX[2].content["at"],
    }


def test_a_finding_reads_as_one_line():
    finding = chain.verify(CHAIN, [*SIX[:2], *SIX[3:]], KEY).finding
    end = chain.verify(CHAIN, SIX[:5], KEY, head=(6, SIX[-1].hash)).finding

    assert str(finding) == (
        f"event #{ID[4]} (sequence 4): removed: sequence 3 missing after event #{ID[2]}"
    )
    assert str(end) == (
        f"the chain (sequence 6): removed: sequence 6 missing at the end, after event "
        f"#{ID[5]}: the chain was sealed up to 6"
    )


def test_the_mac_covers_the_content_whatever_its_key_order_and_nothing_else():
    body = content(1)
    reordered = dict(reversed(list(body.items())))

    assert chain.content_mac(KEY, body) == chain.content_mac(KEY, reordered)
    assert chain.content_mac(KEY, body) != chain.content_mac(b"b" * 32, body)
    assert chain.content_mac(KEY, body) == chain.content_mac(KEY, {**body, "seq": 3, "x": 1})
    for name in chain.CONTENT_FIELDS:
        changed = {**body, name: body[name] + 1 if isinstance(body[name], int) else "changed"}
        assert chain.content_mac(KEY, changed) != chain.content_mac(KEY, body), name
    with pytest.raises(ValueError, match="lacks actor"):
        chain.content_mac(KEY, {k: v for k, v in body.items() if k != "actor"})


# Events not sealed yet: (MAC right, seconds waited) -> (problem, detail) or None (pending)
UNSEALED = {
    "just recorded": (True, 1.0, None),
    "at the grace": (True, 60.0, None),
    "the sealer is late": (True, 61.0, ("unsealed", "recorded 61 seconds ago and still not")),
    "days late": (True, 3 * 86400.0, ("unsealed", "recorded 3 days ago")),
    "forged a moment ago": (False, 1.0, ("inserted", "written without the key")),
}


@pytest.mark.parametrize("name", list(UNSEALED))
def test_an_unsealed_event_is_pending_until_late_unless_forged(name):
    mac_right, waited, expected = UNSEALED[name]
    body = content(1)
    mac = chain.content_mac(KEY, body) if mac_right else FORGED
    event = Sealed(5, None, "", "", mac, body)

    finding = chain.unsealed_finding(event, KEY, waited, grace=60.0)

    if expected is None:
        assert finding is None
    else:
        assert finding is not None
        assert (finding.problem, finding.event_id, finding.seq) == (expected[0], 5, None)
        assert expected[1] in finding.detail
